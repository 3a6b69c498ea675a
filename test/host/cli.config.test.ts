/**
 * The configuration cmdlets from the command line: New-EncryptionKey, Set-BackupShare,
 * Get-BackupConfiguration and Clear-BackupConfiguration, with the bad input each must refuse
 * without changing anything. Needs `npm run build`.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

let root: string;
let home: string;
let share: string;
const cli = (args: string[], stdin?: string, env?: Record<string, string>) => runCli(home, args, { stdin, env });

/** Every file under the home, for "nothing changed" checks. */
function homeState(): Record<string, string> {
  const state: Record<string, string> = {};
  for (const f of readdirSync(home).sort()) state[f] = readFileSync(join(home, f), 'utf8');
  return state;
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'azs-cli-config-'));
  home = join(root, 'home');
  share = join(root, 'share');
  mkdirSync(share);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

async function newKey(): Promise<string> {
  const r = await cli(['New-EncryptionKey']);
  expect(r.code).toBe(0);
  return r.json.Key as string;
}

async function newCertificate(name: string): Promise<{ cer: string; thumbprint: string }> {
  const cer = join(root, `${name}.cer`);
  const r = await cli(
    ['New-EncryptionKey', '-Certificate', '-CertificatePath', cer, '-PfxPath', join(root, `${name}.pfx`), '-PfxPassword', '-'],
    'pfx-password\n',
  );
  expect(r.code, r.stderr).toBe(0);
  return { cer, thumbprint: r.json.Thumbprint as string };
}

describe('New-EncryptionKey', () => {
  it('makes a 64-byte key, returned or written to an owner-only file, and never overwrites without -Force', async () => {
    const key = await newKey();
    expect(key).toHaveLength(88);
    expect(Buffer.from(key, 'base64')).toHaveLength(64);
    const keyPath = join(root, 'backup.key');
    const written = await cli(['New-EncryptionKey', '-KeyPath', keyPath]);
    expect(written.json).toMatchObject({ Kind: 'Key', Key: null, KeyPath: keyPath });
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    const before = readFileSync(keyPath, 'utf8');
    const again = await cli(['New-EncryptionKey', '-KeyPath', keyPath]);
    expect(again.code).toBe(2);
    expect(again.errors[0]?.ErrorId).toBe('FileExists');
    expect(readFileSync(keyPath, 'utf8')).toBe(before);
  });

  it('refuses a pfx password given on the command line, naming the three ways', async () => {
    const r = await cli([
      'New-EncryptionKey',
      '-Certificate',
      '-CertificatePath',
      join(root, 'a.cer'),
      '-PfxPath',
      join(root, 'a.pfx'),
      '-PfxPassword',
      'hunter2',
    ]);
    expect(r.code).toBe(2);
    expect(r.errors[0]?.ErrorId).toBe('SecretOnCommandLine');
    expect(r.errors[0]?.RecommendedAction).toMatch(/-PfxPassword -.*AZSBACKUP_PFXPASSWORD.*prompt/s);
    expect(r.stderr).not.toContain('hunter2');
    expect(readdirSync(root)).not.toContain('a.pfx');
  });
});

describe('Set-BackupShare and Get-BackupConfiguration', () => {
  it('switches from a key to a certificate, and refuses to switch back, changing nothing', async () => {
    const key = await newKey();
    expect((await cli(['Set-BackupShare', '-Path', share, '-EncryptionKey', '-'], `${key}\n`)).json.EncryptionMode).toBe('Key');
    const { cer, thumbprint } = await newCertificate('one');
    const switched = await cli(['Set-BackupShare', '-EncryptionCertPath', cer]);
    expect(switched.code).toBe(0);
    expect(switched.json).toMatchObject({ EncryptionMode: 'Certificate', EncryptionCertThumbprint: thumbprint, EncryptionKeyId: null });
    const before = homeState();
    const back = await cli(['Set-BackupShare', '-EncryptionKey', '-'], `${key}\n`);
    expect(back.code).toBe(2);
    expect(back.errors[0]?.ErrorId).toBe('EncryptionDowngradeRefused');
    expect(homeState()).toEqual(before);
    const shown = (await cli(['Get-BackupConfiguration'])).json;
    expect(shown).toMatchObject({ EncryptionMode: 'Certificate', EncryptionCertThumbprint: thumbprint, Password: null });
    expect(Date.parse(shown.EncryptionCertExpiry)).toBeGreaterThan(Date.now());
  });

  it('keeps secrets out of its output and sealed in its files', async () => {
    const key = await newKey();
    const password = 'Sh4re-Passw0rd-never-shown';
    const r = await cli(
      [
        'Set-BackupShare',
        '-Path',
        '\\\\fs01\\backups\\azs',
        '-UserName',
        'CONTOSO\\backup',
        '-Password',
        '-',
        '-EncryptionKey',
        '-',
        '-SkipValidation',
      ],
      `${password}\n${key}\n`,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ Path: '\\\\fs01\\backups\\azs', UserName: 'CONTOSO\\backup', Password: null });
    const shown = await cli(['Get-BackupConfiguration', '--output', 'clixml']);
    for (const text of [r.stdout, r.stderr, shown.stdout, ...Object.values(homeState())]) {
      expect(text).not.toContain(password);
      expect(text).not.toContain(key);
    }
  });

  it('takes -Credential with its password from the environment, and smb:// paths with a port', async () => {
    const key = await newKey();
    const r = await cli(
      ['Set-BackupShare', '-Path', 'smb://127.0.0.1:4450/backups/azs', '-Credential', 'backup@contoso', '-SkipValidation'],
      undefined,
      { AZSBACKUP_CREDENTIAL: 'pw-from-env', AZSBACKUP_ENCRYPTIONKEY: key },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ Path: 'smb://127.0.0.1:4450/backups/azs', UserName: 'backup@contoso' });
  });

  it('refuses bad input with exit 2 and changes nothing', async () => {
    const key = await newKey();
    expect((await cli(['Set-BackupShare', '-Path', share, '-EncryptionKey', '-'], `${key}\n`)).code).toBe(0);
    const before = homeState();
    const cases: [string[], string][] = [
      [['-BackupFrequencyInHours', '3'], 'ParameterArgumentValidationError'],
      [['-BackupFrequencyInHours', '13'], 'ParameterArgumentValidationError'],
      [['-BackupRetentionPeriodInDays', '1'], 'ParameterArgumentValidationError'],
      [['-BackupRetentionPeriodInDays', '15'], 'ParameterArgumentValidationError'],
      [['-BackupFrequencyInHours', 'six'], 'ParameterArgumentTransformationError'],
      // A relative path is resolved against the current folder (and then checked); a URL of another kind is refused.
      [['-Path', 'ftp://server/share'], 'ParameterArgumentValidationError'],
      [['-Path', 'smb://server:99999/share', '-SkipValidation'], 'InvalidSharePath'],
      [['-Backup', '6'], 'AmbiguousParameter'],
      [['-Nonsense', '1'], 'ParameterNotFound'],
      [['-EncryptionCertPath', join(root, 'missing.cer')], 'CertificateFileNotFound'],
    ];
    for (const [args, errorId] of cases) {
      const r = await cli(['Set-BackupShare', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.errors[0]?.ErrorId, args.join(' ')).toBe(errorId);
      expect(homeState()).toEqual(before);
    }
    const bad = await cli(['Set-BackupShare', '-EncryptionKey', '-'], 'not-a-key\n');
    expect(bad.code).toBe(2);
    expect(bad.errors[0]?.ErrorId).toBe('InvalidEncryptionKey');
    expect(bad.stderr).not.toContain('not-a-key');
    expect(homeState()).toEqual(before);
  });

  it('-WhatIf shows the change without making it', async () => {
    const key = await newKey();
    expect((await cli(['Set-BackupShare', '-Path', share, '-EncryptionKey', '-'], `${key}\n`)).code).toBe(0);
    const before = homeState();
    const r = await cli(['Set-BackupShare', '-BackupFrequencyInHours', '6', '-WhatIf']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('What if:');
    expect(homeState()).toEqual(before);
  });
});

describe('Clear-BackupConfiguration', () => {
  it('changes nothing under -WhatIf, and otherwise resets to defaults but keeps the role catalog', async () => {
    const key = await newKey();
    expect((await cli(['Set-BackupShare', '-Path', share, '-EncryptionKey', '-', '-BackupFrequencyInHours', '6'], `${key}\n`)).code).toBe(
      0,
    );
    writeFileSync(join(root, 'x'), 'x');
    expect((await cli(['Register-InfrastructureRole', '-Name', 'CA', '-Provider', 'directory', '-Path', root])).code).toBe(0);
    const before = homeState();
    expect((await cli(['Clear-BackupConfiguration', '-WhatIf'])).code).toBe(0);
    expect(homeState()).toEqual(before);
    const cleared = await cli(['Clear-BackupConfiguration', '-Confirm:$false']);
    expect(cleared.json).toMatchObject({ Path: null, EncryptionMode: null, BackupFrequencyInHours: 12, BackupRetentionPeriodInDays: 7 });
    expect((await cli(['Get-InfrastructureRole'])).json).toMatchObject([{ Name: 'CA' }]);
  });

  // A damaged config.json's error recommended Clear-BackupConfiguration, which read the damaged
  // file first and failed with the same error: the remedy the operator was given did not work.
  it('does what a damaged configuration recommends: starts over, keeping the damaged file beside', async () => {
    const key = await newKey();
    expect((await cli(['Set-BackupShare', '-Path', share, '-EncryptionKey', '-'], `${key}\n`)).code).toBe(0);
    const damaged = readFileSync(join(home, 'config.json')).subarray(0, 40);
    writeFileSync(join(home, 'config.json'), damaged);
    const refused = await cli(['Get-BackupConfiguration']);
    expect(refused.errors[0]).toMatchObject({ ErrorId: 'ConfigurationCorrupt' });
    expect(refused.errors[0]!.RecommendedAction).toContain('Clear-BackupConfiguration');

    const cleared = await cli(['Clear-BackupConfiguration', '-Confirm:$false']);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.json).toMatchObject({ Path: null, EncryptionMode: null });
    expect((await cli(['Get-BackupConfiguration'])).code).toBe(0);
    const aside = readdirSync(home).filter((f) => f.startsWith('config.json.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(home, aside[0]!))).toEqual(damaged);
    expect(statSync(join(home, aside[0]!)).mode & 0o077).toBe(0);
  });
});

// seal.key missing (deleted, or a copy of AZSBACKUP_HOME made without it) was replaced silently by
// a new key at the first secret opened or sealed: every secret in config.json then failed as
// "changed, or sealed with another key" (exit 12, no word of seal.key), and what was sealed next
// needed the new key while the rest needed the lost one, so putting the old key back no longer
// mended everything. Clear-BackupConfiguration kept the roles' passwords sealed with the lost key.
describe('A configuration whose seal.key is missing', () => {
  async function configured(): Promise<{ sealKey: Buffer; data: string }> {
    const data = join(root, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'x'), 'x');
    const key = await newKey();
    expect((await cli(['Set-BackupShare', '-Path', share, '-EncryptionKey', '-'], `${key}\n`)).code).toBe(0);
    expect((await cli(['Register-InfrastructureRole', '-Name', 'CA', '-Provider', 'directory', '-Path', data])).code).toBe(0);
    return { sealKey: readFileSync(join(home, 'seal.key')), data };
  }

  it('is refused, naming the file and the ways out, and no key is made; putting it back mends all', async () => {
    const { sealKey } = await configured();
    rmSync(join(home, 'seal.key'));
    const config = readFileSync(join(home, 'config.json'), 'utf8');
    const refusals: [string[], string?][] = [
      [['Start-InfrastructureBackup']],
      [
        [
          'Register-InfrastructureRole',
          '-Name',
          'Db',
          '-Provider',
          'postgres',
          '-ConnectionString',
          'postgresql://u@localhost/db',
          '-DatabasePassword',
          '-',
        ],
        'pw\n',
      ],
    ];
    for (const [args, stdin] of refusals) {
      const r = await cli(args, stdin);
      expect(r.code, args[0]).toBe(1);
      expect(r.errors[0], args[0]).toMatchObject({ ErrorId: 'SealingKeyMissing', TargetObject: join(home, 'seal.key') });
      expect(r.errors[0]!.Message).toContain(join(home, 'seal.key'));
      expect(r.errors[0]!.RecommendedAction).toContain('Put back');
      expect(r.errors[0]!.RecommendedAction).toContain('Clear-BackupConfiguration');
      expect(existsSync(join(home, 'seal.key')), args[0]).toBe(false);
      expect(readFileSync(join(home, 'config.json'), 'utf8')).toBe(config);
    }
    writeFileSync(join(home, 'seal.key'), sealKey, { mode: 0o600 });
    const backup = await cli(['Start-InfrastructureBackup']);
    expect(backup.code, backup.stderr).toBe(0);
  });

  it('is started over by Clear-BackupConfiguration, which drops the secrets the lost key sealed and says so', async () => {
    await configured();
    const db = ['Register-InfrastructureRole', '-Name', 'Db', '-Provider', 'postgres', '-ConnectionString', 'postgresql://u@localhost/db'];
    expect((await cli([...db, '-DatabasePassword', '-'], 'pw\n')).code).toBe(0);
    rmSync(join(home, 'seal.key'));
    const cleared = await cli(['Clear-BackupConfiguration', '-Confirm:$false']);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stderr).toMatch(/\{"Warning":.*Db.*-DatabasePassword/);
    expect(readFileSync(join(home, 'config.json'), 'utf8')).not.toContain('sealed');
    expect((await cli(['Get-InfrastructureRole'])).json.map((r: { Name: string }) => r.Name).sort()).toEqual(['CA', 'Db']);
    // The secrets given again are sealed with a new key, and open.
    const key = await newKey();
    expect((await cli(['Set-BackupShare', '-Path', share, '-EncryptionKey', '-'], `${key}\n`)).code).toBe(0);
    expect((await cli([...db, '-DatabasePassword', '-'], 'pw\n')).code).toBe(0);
    expect(existsSync(join(home, 'seal.key'))).toBe(true);
    const backup = await cli(['Start-InfrastructureBackup', '-RoleName', 'CA']);
    expect(backup.code, backup.stderr).toBe(0);
  });
});
