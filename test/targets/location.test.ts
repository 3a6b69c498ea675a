import { describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { openTarget } from '../../src/targets/index.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { parseShareLocation, parseUserName } from '../../src/targets/location.js';
import { SmbTarget } from '../../src/targets/smb.js';

function refused(fn: () => unknown): AzsError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AzsError);
    return e as AzsError;
  }
  throw new Error('expected an AzsError');
}

describe('parseShareLocation', () => {
  it('parses UNC paths on port 445', () => {
    expect(parseShareLocation('\\\\fs01\\backups')).toEqual({
      kind: 'smb',
      server: 'fs01',
      port: 445,
      share: 'backups',
      folder: '',
      display: '\\\\fs01\\backups',
    });
    expect(parseShareLocation('\\\\fs01.contoso.com\\backups\\azs\\hub 1\\')).toEqual({
      kind: 'smb',
      server: 'fs01.contoso.com',
      port: 445,
      share: 'backups',
      folder: 'azs/hub 1',
      display: '\\\\fs01.contoso.com\\backups\\azs\\hub 1',
    });
    expect(parseShareLocation('//10.0.0.5/b$/x')).toMatchObject({
      server: '10.0.0.5',
      share: 'b$',
      folder: 'x',
      display: '\\\\10.0.0.5\\b$\\x',
    });
  });

  it('parses smb:// URLs with an optional port and %-escapes', () => {
    expect(parseShareLocation('smb://127.0.0.1:4450/backups/a%20b/c')).toEqual({
      kind: 'smb',
      server: '127.0.0.1',
      port: 4450,
      share: 'backups',
      folder: 'a b/c',
      display: 'smb://127.0.0.1:4450/backups/a%20b/c',
    });
    expect(parseShareLocation('SMB://fs01/backups')).toMatchObject({ port: 445, display: '\\\\fs01\\backups' });
    expect(parseShareLocation('smb://[::1]:445/s')).toMatchObject({ server: '[::1]', share: 's' });
  });

  it('parses absolute local folders', () => {
    expect(parseShareLocation('/mnt/backups/')).toEqual({ kind: 'local', path: '/mnt/backups' });
    expect(parseShareLocation('/mnt//backups/./x')).toEqual({ kind: 'local', path: '/mnt/backups/x' });
    expect(parseShareLocation('/')).toEqual({ kind: 'local', path: '/' });
  });

  it.each([
    ['relative path', 'backups/here'],
    ['Windows drive path', 'C:\\backups'],
    ['empty', '   '],
    ['missing share', '\\\\fs01'],
    ['missing share (trailing slash)', '\\\\fs01\\'],
    ['missing share in URL', 'smb://fs01/'],
    ['bad port', 'smb://fs01:99999/s'],
    ['port zero', 'smb://fs01:0/s'],
    ['port not a number', 'smb://fs01:abc/s'],
    ['.. in UNC', '\\\\fs01\\s\\a\\..\\b'],
    ['.. in URL', 'smb://fs01/s/../x'],
    ['.. in local path', '/mnt/../etc'],
    ['credentials in URL', 'smb://user:pw@fs01/s'],
    ['other scheme', 'http://fs01/s'],
    ['bad server name', '\\\\fs 01\\s'],
    ['bad character in share', '\\\\fs01\\a*b'],
  ])('refuses a %s with InvalidSharePath (exit 2)', (_what, input) => {
    const e = refused(() => parseShareLocation(input));
    expect(e.errorId).toBe('InvalidSharePath');
    expect(e.category).toBe('InvalidArgument');
    expect(e.exitCode).toBe(2);
    expect(e.recommendedAction).toContain('smb://server[:port]/share/folder');
    expect(e.recommendedAction).toContain('\\\\server\\share\\folder');
  });

  it('never echoes a password given inside a URL back in the path it keeps', () => {
    const e = refused(() => parseShareLocation('smb://admin:S3cretPw@fs01/s'));
    expect(e.message).toMatch(/credential/);
    expect(`${e.message} ${String(e.targetObject)}`).not.toContain('S3cretPw');
  });
});

describe('parseUserName', () => {
  it('accepts DOMAIN\\user, user@domain and user', () => {
    expect(parseUserName('CONTOSO\\backup')).toEqual({ domain: 'CONTOSO', user: 'backup' });
    expect(parseUserName('backup@contoso.com')).toEqual({ domain: 'contoso.com', user: 'backup' });
    expect(parseUserName('backup')).toEqual({ user: 'backup' });
    expect(parseUserName('.\\backup')).toEqual({ user: 'backup' });
  });

  it.each(['', '\\user', 'DOMAIN\\', 'a\\b\\c', 'user@', '@dom', 'a@b@c', 'D\\u@x', 'bad\nname'])('refuses %j', (input) => {
    const e = refused(() => parseUserName(input));
    expect(e.errorId).toBe('InvalidUserName');
    expect(e.exitCode).toBe(2);
  });
});

describe('openTarget', () => {
  it('opens a local folder without a credential and an SMB share with one', () => {
    expect(openTarget('/tmp')).toBeInstanceOf(LocalFolderTarget);
    const smb = openTarget('\\\\fs01\\backups\\hub', { userName: 'CONTOSO\\svc', password: 'p' });
    expect(smb).toBeInstanceOf(SmbTarget);
    expect(smb.location).toBe('\\\\fs01\\backups\\hub');
    expect((smb as SmbTarget).endpoint).toEqual({ host: 'fs01', port: 445 });
  });

  it('refuses a share path without a credential', () => {
    const e = refused(() => openTarget('\\\\fs01\\backups'));
    expect(e.errorId).toBe('ShareCredentialMissing');
    expect(e.exitCode).toBe(2);
    expect(e.recommendedAction).toContain('-Credential');
  });

  it('never shows the password in the location', () => {
    const t = openTarget('smb://fs01:1445/backups', { userName: 'svc', password: 'Sup3r-secret' });
    expect(t.location).toBe('smb://fs01:1445/backups');
    expect(JSON.stringify(t)).not.toContain('Sup3r-secret');
  });
});
