import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, freshHome, list, makeDrill, parseErrors, runCli, spawnCli, whileRunning, type Drill } from '../support/cli.js';
import { heldExportRole, type Gate } from '../support/gate.js';

/**
 * Two machines on one share (a redeployed host beside the old one still running): machine B, set
 * up with a new key, runs Update-BackupEncryption with the old key while machine A, still on the
 * old key, backs up into the share's store. The job lock of B does not hold off A.
 *
 * B listed the backups as it started, re-wrapped them, and at its end wrapped the store's master
 * key for the new key alone, since no backup it had listed still needed the old one. A's backup,
 * committed after that listing, has its data key under the old key only: with the store's master
 * key under the new key only, neither key restored it, though A said Succeeded and B said the old
 * key was no longer needed.
 *
 * A's backup is held in its role's export (a gate) while B runs: the interleaving is exact.
 */

describe('Update-BackupEncryption on another machine while a backup runs', () => {
  let d: Drill;
  let gate: Gate;
  let homeB: string;
  let newKey: string;

  beforeAll(async () => {
    d = await makeDrill({ encryption: 'key', roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    gate = await heldExportRole(d);
    await d.backup(); // the store, wrapped for the old key
    homeB = await freshHome(d);
    newKey = expectOk(await runCli(homeB, ['New-EncryptionKey'])).json.Key;
    expectOk(
      await runCli(homeB, ['Set-BackupShare', '-Path', d.share, '-EncryptionKey', '-'], { stdin: `${newKey}\n` }),
      'B: Set-BackupShare',
    );
  }, 120_000);
  afterAll(async () => {
    await gate?.release().catch(() => undefined);
    await d?.cleanup();
  });

  const opensWith = async (name: string, key: string): Promise<boolean> => {
    const r = await d.cli(['Test-InfrastructureBackup', '-Name', name, '-EncryptionKey', '-'], { stdin: `${key}\n` });
    return r.code === 0 && r.json?.IsValid === true;
  };

  it('never leaves a backup that says Succeeded opening with neither key', async () => {
    await gate.arm();
    const backup = spawnCli(d.home, ['Start-InfrastructureBackup']);
    await whileRunning(backup, 'the backup exporting its role', gate.held);
    const rewrap = await runCli(homeB, ['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${d.key}\n` });
    expectOk(rewrap, 'B: Update-BackupEncryption');
    await gate.release();
    const ended = await backup;

    if (ended.exitCode !== 0) {
      // Failed, saying why, and listed as failed (the first backup alone succeeded).
      expect(parseErrors(String(ended.stderr)).map((e) => e.ErrorId)).toEqual(['RepositoryRewrapped']);
      const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
      expect(listed.map((b) => b.Status).sort()).toEqual(['Failed', 'Succeeded']);
      return;
    }
    const made = JSON.parse(String(ended.stdout));
    expect(made.Status).toBe('Succeeded');
    const opens = { oldKey: await opensWith(made.Name, d.key!), newKey: await opensWith(made.Name, newKey) };
    expect(opens, `backup ${made.Name}, committed by A after B's re-wrap`).not.toEqual({ oldKey: false, newKey: false });
  }, 180_000);
});
