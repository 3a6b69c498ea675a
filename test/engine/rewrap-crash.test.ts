import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, spawnCli, type Drill } from '../support/cli.js';

/**
 * Update-BackupEncryption killed (kill -9) after each of its writes on the share, with backups in
 * the deduplicating repository. It re-wrapped each backup's data key for the new key first and the
 * repository's master key last: killed in between (or failing there: the share gone, the disk
 * full), a re-wrapped backup's data key opened only with the new key and the master key its chunks
 * are under only with the old one, so neither key restored it until a second run succeeded.
 * Now, after every kill, each backup restores with the old key or the new one, and a second run
 * leaves every backup opening with the new key alone.
 */

describe('Update-BackupEncryption killed part way', () => {
  let d: Drill;
  const names: string[] = [];

  beforeAll(async () => {
    d = await makeDrill({ encryption: 'key', roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    names.push((await d.backup()).Name, (await d.backup()).Name);
  });
  afterAll(async () => d?.cleanup());

  const opensWith = async (name: string, key: string): Promise<boolean> => {
    const r = await d.cli(['Test-InfrastructureBackup', '-Name', name, '-EncryptionKey', '-'], { stdin: `${key}\n` });
    return r.code === 0 && r.json?.IsValid === true;
  };

  it.each([1, 2, 3])(
    'killed after %i writes: every backup still restores with one of the keys, and a second run finishes',
    async (after) => {
      const oldKey = d.key!;
      const newKey = expectOk(await d.cli(['New-EncryptionKey']), 'New-EncryptionKey').json.Key as string;
      expectOk(await d.cli(['Set-BackupShare', '-EncryptionKey', '-'], { stdin: `${newKey}\n` }), 'Set-BackupShare (new key)');

      const killed = await spawnCli(d.home, ['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], {
        stdin: `${oldKey}\n`,
        env: { AZSBACKUP_TEST_REWRAP_KILL_AFTER: String(after) },
      });
      expect(killed.signal, String(killed.stderr)).toBe('SIGKILL');

      const openedByNeither: string[] = [];
      for (const name of names) if (!(await opensWith(name, oldKey)) && !(await opensWith(name, newKey))) openedByNeither.push(name);

      const second = await d.cli(['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${oldKey}\n` });
      d.key = newKey;
      expect(openedByNeither, `opened by neither key after a kill after ${after} writes`).toEqual([]);
      expectOk(second, 'second run');
      for (const name of names) expect(await opensWith(name, newKey), `backup ${name} with the new key`).toBe(true);
    },
  );
});
