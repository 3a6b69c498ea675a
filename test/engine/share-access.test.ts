import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigStore } from '../../src/config/store.js';
import { shareAccess } from '../../src/engine/share-access.js';

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'azs-session-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

describe('shareAccess', () => {
  const configured = async () => {
    const store = new ConfigStore(home);
    await store.update((c) => ({
      ...c,
      share: { path: 'smb://127.0.0.1:4450/backups', userName: 'CONTOSO\\backup', password: store.seal('s3cret', 'share-password') },
    }));
    return store;
  };

  it('uses the configured share and its stored credential when no -Path is given', async () => {
    const store = await configured();
    expect(shareAccess(store, {})).toEqual({
      path: 'smb://127.0.0.1:4450/backups',
      credential: { userName: 'CONTOSO\\backup', password: 's3cret' },
      // The auth file for the share goes under the home, never into TMPDIR.
      privateDir: expect.stringMatching(
        new RegExp(`^${store.home.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/private/[0-9a-f]{8}-[0-9a-f]{8}-${process.pid}-\\d+(-\\d+)?$`),
      ),
    });
  });

  it('a -Path equal to the configured share (a piped SharePath) keeps the stored credential', async () => {
    const store = await configured();
    expect(shareAccess(store, { Path: 'smb://127.0.0.1:4450/backups' }).credential).toMatchObject({ password: 's3cret' });
  });

  it('another -Path takes only the credential given with it', async () => {
    const store = await configured();
    expect(shareAccess(store, { Path: 'smb://127.0.0.1:4450/other' }).credential).toBeUndefined();
    expect(shareAccess(store, { Path: '/srv/x', Credential: { UserName: 'u', Password: 'p' } }).credential).toEqual({
      userName: 'u',
      password: 'p',
    });
  });

  it('refuses -Credential together with -UserName, and a missing share', async () => {
    const store = new ConfigStore(home);
    expect(() => shareAccess(store, {})).toThrow(/No backup share is configured/);
    expect(() => shareAccess(store, { Path: '/x', UserName: 'u', Credential: { UserName: 'u', Password: 'p' } })).toThrow(
      /either -Credential or -UserName/,
    );
  });
});
