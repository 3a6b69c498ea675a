import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, spawnCli, whileRunning, type Drill, list } from '../support/cli.js';
import { makeGate, type Gate } from '../support/gate.js';

/**
 * Two scheduler ticks at once (a systemd timer and a leftover cron job, or a slow tick overlapping
 * the next). A tick decided that a backup was due from the configuration it read at its start, and
 * took the job lock only afterwards: a tick that read it before another tick's backup noted its
 * success, and reached the lock once that backup had let it go, took a second backup at once,
 * whatever the frequency. Here the second tick is held between the two by its BackupOverdue
 * alert's command. Now the tick decides again under the job lock, and takes no second backup.
 */

describe('two scheduler ticks at once', () => {
  let d: Drill;
  let gate: Gate;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    // The alert command of the late tick holds it after it has read the configuration.
    gate = await makeGate(d.root, 'alert', 'process.exit(0)', { readsStdin: true });
    expectOk(
      await d.cli([
        'Set-BackupShare',
        '-IsBackupSchedulerEnabled',
        '$true',
        '-BackupFrequencyInHours',
        '4',
        ...gate.command.map((word) => `-AlertCommand:${word}`),
        '-SkipValidation',
      ]),
    );
    await d.backup();
    // The last success was three days ago: a backup is due, and BackupOverdue is raised.
    const configFile = path.join(d.home, 'config.json');
    const config = JSON.parse(await fs.readFile(configFile, 'utf8'));
    config.lastSuccessfulBackupTime = new Date(Date.now() - 3 * 86_400_000).toISOString();
    await fs.writeFile(configFile, JSON.stringify(config));
  });
  afterAll(async () => {
    await gate?.release().catch(() => undefined);
    await d?.cleanup();
  });

  it('the tick that was overtaken takes no second backup', async () => {
    const before = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).length;
    await gate.arm();
    // The second tick reads the configuration (a backup is due) and waits in its alert command.
    const late = spawnCli(d.home, ['Invoke-BackupScheduler']);
    await whileRunning(late, 'the late tick waiting in its alert command', gate.held);
    // Meanwhile the first tick backs up (and prunes).
    const first = await d.cli(['Invoke-BackupScheduler']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.json.Status).toBe('Succeeded');

    await gate.release();
    const ended = await late;
    expect(ended.exitCode, String(ended.stderr)).toBe(0);
    expect(String(ended.stdout).trim()).toBe('');
    expect(list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json)).toHaveLength(before + 1);
  });
});
