import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, type Drill, list } from '../support/cli.js';

/**
 * A machine whose clock ran ahead (a wrong hardware clock at boot, a VM resumed with the host's
 * time off) while a backup succeeded recorded that backup's time in the future; once the clock
 * was set right, every scheduler tick found the last success "less than the frequency ago", took
 * no backup and raised nothing, until the clock caught up with the wrong time (a year, here).
 * Now a last success recorded later than now is not taken for a recent one: the tick says the
 * clock was wrong, and takes the backup.
 */

const DAY = 86_400_000;

describe('a last successful backup recorded in the future (the clock was wrong then, or is now)', () => {
  let d: Drill;
  const configFile = () => path.join(d.home, 'config.json');

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    expectOk(await d.cli(['Set-BackupShare', '-IsBackupSchedulerEnabled', '$true', '-BackupFrequencyInHours', '4']));
    await d.backup();
    const config = JSON.parse(await fs.readFile(configFile(), 'utf8'));
    config.lastSuccessfulBackupTime = new Date(Date.now() + 365 * DAY).toISOString();
    await fs.writeFile(configFile(), JSON.stringify(config));
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('does not stop the scheduled backups: the tick warns of the clock and takes one', async () => {
    const before = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).length;
    const tick = await d.cli(['Invoke-BackupScheduler']);
    expect(tick.code, tick.stderr).toBe(0);
    expect(tick.json?.Status, tick.stderr).toBe('Succeeded');
    expect(tick.stderr).toMatch(/later than this machine's time now[\s\S]*clock/);
    expect(list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json)).toHaveLength(before + 1);

    // The new success is what counts from now on: the next tick has nothing to do.
    const noted = Date.parse(JSON.parse(await fs.readFile(configFile(), 'utf8')).lastSuccessfulBackupTime);
    expect(Math.abs(noted - Date.now())).toBeLessThan(60_000);
    const next = await d.cli(['Invoke-BackupScheduler']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout.trim()).toBe('');
  });

  it('Get-BackupConfiguration does not show the next backup a year away', async () => {
    const config = JSON.parse(await fs.readFile(configFile(), 'utf8'));
    config.lastSuccessfulBackupTime = new Date(Date.now() + 365 * DAY).toISOString();
    await fs.writeFile(configFile(), JSON.stringify(config));
    const shown = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
    expect(Date.parse(shown.NextBackupTime) - Date.now()).toBeLessThan(60_000);
  });
});
