import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, spawnCli, whileRunning, type Drill, list } from '../support/cli.js';
import { heldExportRole, type Gate } from '../support/gate.js';

/**
 * Commands that change what a running backup depends on, run while one runs. The backup is held
 * by its role's export command, so the interleaving is exact.
 *
 * - Set-BackupShare rotated the encryption key while a backup ran, and said nothing: the backup had
 *   read the old key as it started and wrapped its data for it, and committed after the rotation,
 *   so the configuration named a key the backup was not encrypted for. The warning of backups left
 *   on the old key counted only those committed then; with none yet, there was no warning at all,
 *   and an operator retiring the old key lost the backup.
 * - Clear-BackupConfiguration took no job lock: it dropped the repository keys the backup had just
 *   saved in config.json (prune then deleted no packs until this machine had the keys again), and
 *   the backup then recorded its success into the cleared configuration.
 * Both now take the job lock, and are refused (JobLockHeld) while a job runs.
 */

describe('commands run while a backup runs', () => {
  let d: Drill;
  let gate: Gate;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    gate = await heldExportRole(d);
  });
  afterAll(async () => {
    await gate?.release().catch(() => undefined);
    await d?.cleanup();
  });

  /** Runs `during` while a backup is held in its role's export; the backup's name once it ended well. */
  async function duringBackup(during: () => Promise<void>): Promise<string> {
    await gate.arm();
    const backup = spawnCli(d.home, ['Start-InfrastructureBackup']);
    await whileRunning(backup, 'the backup exporting its role', gate.held);
    await during();
    await gate.release();
    const ended = await backup;
    expect(ended.exitCode, String(ended.stderr)).toBe(0);
    return JSON.parse(String(ended.stdout)).Name;
  }

  it('a key rotation never leaves the configured key one the backup was not made for, unheard of', async () => {
    const newKey = expectOk(await d.cli(['New-EncryptionKey'])).json as { Key: string; KeyId: string };
    let rotated!: Awaited<ReturnType<Drill['cli']>>;
    const name = await duringBackup(async () => {
      rotated = await d.cli(['Set-BackupShare', '-EncryptionKey', '-'], { stdin: `${newKey.Key}\n` });
    });

    const configured = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
    const made = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).find((b) => b.Name === name);
    const warned = rotated.stderr.includes(name) || /not encrypted for/.test(rotated.stderr);
    if (rotated.code === 0 && !warned) {
      // The rotation went through, silently: the backup must then be encrypted for the key configured now.
      expect({ backup: made.EncryptionKeyId, configured: newKey.KeyId }).toEqual({ backup: newKey.KeyId, configured: newKey.KeyId });
    } else {
      // Refused (the backup runs), and the configuration still names the key the backup used.
      expect(rotated.code, rotated.stderr).toBe(11);
      expect(rotated.errors[0]?.ErrorId).toBe('JobLockHeld');
      expect(made.EncryptionKeyId).toBe(d.keyId);
    }
    expect(JSON.stringify(configured)).toContain(rotated.code === 0 ? newKey.KeyId : d.keyId!);
  });

  it('Clear-BackupConfiguration is refused, and the configuration keeps the keys and the record the backup saved', async () => {
    let cleared!: Awaited<ReturnType<Drill['cli']>>;
    await duringBackup(async () => {
      cleared = await d.cli(['Clear-BackupConfiguration', '-Confirm:$false']);
    });
    expect(cleared.code, cleared.stderr).toBe(11);
    expect(cleared.errors[0]?.ErrorId).toBe('JobLockHeld');
    const config = JSON.parse(await fs.readFile(path.join(d.home, 'config.json'), 'utf8'));
    expect(config.share?.path).toBe(d.share);
    expect(config.repository).toBeDefined();
    expect(config.lastSuccessfulBackupTime).toBeDefined();
    // And with no job running, it clears.
    expectOk(await d.cli(['Clear-BackupConfiguration', '-Confirm:$false']));
  });
});
