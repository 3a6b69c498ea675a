import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, spawnCli, whileRunning, type Drill } from '../support/cli.js';
import { makeGate, type Gate } from '../support/gate.js';

/**
 * Set-BackupShare rotated the encryption key while a backup ran, and said nothing: the backup had
 * read the old key as it started and wrapped its data for it, and committed after the rotation,
 * so the configuration named a key the backup was not encrypted for. The warning of backups left
 * on the old key counted only those committed then; with none yet, there was no warning at all,
 * and an operator retiring the old key lost the backup. The backup is held by its role's export
 * command while the key is rotated, so the interleaving is exact.
 */

const list = (json: unknown): any[] => (json === undefined ? [] : [json].flat());

describe('the encryption key rotated while a backup runs', () => {
  let d: Drill;
  let gate: Gate;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    gate = await makeGate(d.root, 'export', "process.stdout.write('exported\\n')");
    await d.registerCommand('Slow', gate.command, ['sh', '-c', 'cat >/dev/null']);
  });
  afterAll(async () => {
    await gate?.release().catch(() => undefined);
    await d?.cleanup();
  });

  it('never leaves the configured key one the backup was not made for, unheard of', async () => {
    const newKey = expectOk(await d.cli(['New-EncryptionKey'])).json as { Key: string; KeyId: string };
    await gate.arm();
    const backup = spawnCli(d.home, ['Start-InfrastructureBackup']);
    await whileRunning(backup, 'the backup exporting its role', gate.held);
    const rotated = await d.cli(['Set-BackupShare', '-EncryptionKey', '-'], { stdin: `${newKey.Key}\n` });
    await gate.release();
    const ended = await backup;
    expect(ended.exitCode, String(ended.stderr)).toBe(0);

    const configured = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
    const made = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(made).toHaveLength(1);
    const warned = rotated.stderr.includes(made[0].Name) || /not encrypted for/.test(rotated.stderr);
    if (rotated.code === 0 && !warned) {
      // The rotation went through, silently: the backup must then be encrypted for the key configured now.
      expect({ backup: made[0].EncryptionKeyId, configured: newKey.KeyId }).toEqual({
        backup: newKey.KeyId,
        configured: newKey.KeyId,
      });
    } else {
      // Refused (the backup runs), and the configuration still names the key the backup used.
      expect(rotated.code, rotated.stderr).toBe(11);
      expect(rotated.errors[0]?.ErrorId).toBe('JobLockHeld');
      expect(made[0].EncryptionKeyId).toBe(d.keyId);
    }
    expect(JSON.stringify(configured)).toContain(rotated.code === 0 ? newKey.KeyId : d.keyId!);
  });
});
