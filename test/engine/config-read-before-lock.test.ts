import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, spawnCli, whileRunning, type Drill, list } from '../support/cli.js';

/**
 * A backup, and Update-BackupEncryption, read the configuration (share, encryption key or
 * certificates) before they took the job lock. A Set-BackupShare that took and let go of the lock
 * in that gap changed the share or the encryption, and the job then ran for what it had read: the
 * backup wrote to the old share, or wrapped its data for the old key, and the re-wrap targeted the
 * old recipients, while the configuration named the new ones. The job is held in the gap by the
 * test-only AZSBACKUP_TEST_PAUSE_AFTER_CONFIG_READ, so the interleaving is exact.
 */

describe('the configuration changed between a job reading it and taking the job lock', () => {
  let d: Drill;
  let go: string;
  const paused = () =>
    fs.access(`${go}.paused`).then(
      () => true,
      () => false,
    );
  const env = () => ({ AZSBACKUP_TEST_PAUSE_AFTER_CONFIG_READ: go });

  beforeEach(async () => {
    d = await makeDrill({ roles: false });
    go = path.join(d.root, 'go');
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
  });
  afterEach(async () => {
    await fs.writeFile(go, '').catch(() => undefined);
    await d?.cleanup();
  });

  it('a backup is encrypted for the key configured when it commits', async () => {
    const newKey = expectOk(await d.cli(['New-EncryptionKey'])).json as { Key: string; KeyId: string };
    const backup = spawnCli(d.home, ['Start-InfrastructureBackup'], { env: env() });
    await whileRunning(backup, 'the backup having read its configuration', paused);
    expectOk(await d.cli(['Set-BackupShare', '-EncryptionKey', '-'], { stdin: `${newKey.Key}\n` }), 'the rotation');
    await fs.writeFile(go, '');
    const ended = await backup;
    expect(ended.exitCode, String(ended.stderr)).toBe(0);

    const made = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(made.map((b) => b.EncryptionKeyId)).toEqual([newKey.KeyId]);
  });

  it('a backup goes to the share configured when it commits', async () => {
    const moved = path.join(d.root, 'new-share');
    await fs.mkdir(moved);
    const backup = spawnCli(d.home, ['Start-InfrastructureBackup'], { env: env() });
    await whileRunning(backup, 'the backup having read its configuration', paused);
    expectOk(await d.cli(['Set-BackupShare', '-Path', moved]), 'the move');
    await fs.writeFile(go, '');
    const ended = await backup;
    expect(ended.exitCode, String(ended.stderr)).toBe(0);

    const made = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(made.map((b) => b.SharePath)).toEqual([moved]);
    expect(await fs.readdir(d.share)).toEqual([]);
  });

  it('Update-BackupEncryption re-wraps for the recipients configured when it runs', async () => {
    const made = await d.backup();
    const second = expectOk(await d.cli(['New-EncryptionKey'])).json as { Key: string; KeyId: string };
    const third = expectOk(await d.cli(['New-EncryptionKey'])).json as { Key: string; KeyId: string };
    expectOk(await d.cli(['Set-BackupShare', '-EncryptionKey', '-'], { stdin: `${second.Key}\n` }), 'the first rotation');
    const rewrap = spawnCli(d.home, ['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], {
      env: env(),
      stdin: `${d.key}\n`,
    });
    await whileRunning(rewrap, 'the re-wrap having read its configuration', paused);
    expectOk(await d.cli(['Set-BackupShare', '-EncryptionKey', '-'], { stdin: `${third.Key}\n` }), 'the second rotation');
    await fs.writeFile(go, '');
    const ended = await rewrap;
    expect(ended.exitCode, String(ended.stderr)).toBe(0);

    const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(listed.map((b) => [b.Name, b.EncryptionKeyId])).toEqual([[made.Name, third.KeyId]]);
  });
});
