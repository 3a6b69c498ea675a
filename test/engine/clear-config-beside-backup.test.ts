import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, spawnCli, whileRunning, type Drill } from '../support/cli.js';
import { makeGate, type Gate } from '../support/gate.js';

/**
 * Clear-BackupConfiguration took no job lock. Run while a backup ran, it dropped the repository
 * keys the backup had just saved in config.json (prune then deleted no packs until this machine had
 * the keys again), and the backup then recorded its success into the cleared configuration. It
 * now takes the job lock, as Set-BackupShare does to change the share or the encryption, and is
 * refused (JobLockHeld) while a job runs. The backup is held by its role's export command.
 */

describe('Clear-BackupConfiguration while a backup runs', () => {
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

  it('is refused, and the configuration keeps the keys and the record the backup saved', async () => {
    await gate.arm();
    const backup = spawnCli(d.home, ['Start-InfrastructureBackup']);
    await whileRunning(backup, 'the backup exporting its role', gate.held);
    const cleared = await d.cli(['Clear-BackupConfiguration', '-Confirm:$false']);
    await gate.release();
    const ended = await backup;
    expect(ended.exitCode, String(ended.stderr)).toBe(0);

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
