import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, spawnCli, whileRunning, type Drill, list } from '../support/cli.js';
import { heldExportRole, type Gate } from '../support/gate.js';
import { redate } from '../support/redate.js';

/**
 * The scheduler prunes after its backup. It pruned by the configuration it read when the tick
 * started: a retention period lengthened while the backup ran (an operator keeping backups for an
 * investigation) was ignored, and the prune deleted by the old, shorter one the very backups the
 * operator had just asked to keep. Here the backup is held by a role's export command while the
 * retention is lengthened, so the interleaving is exact.
 */

const DAY = 86_400_000;

describe('a retention period lengthened while a scheduled backup runs', () => {
  let d: Drill;
  let gate: Gate;

  beforeAll(async () => {
    d = await makeDrill({ roles: false, retentionDays: 2 });
    // The role's export holds the scheduled backup while the retention changes.
    gate = await heldExportRole(d);
    expectOk(await d.cli(['Set-BackupShare', '-IsBackupSchedulerEnabled', '$true', '-BackupFrequencyInHours', '4']));
  });
  afterAll(async () => {
    await gate?.release().catch(() => undefined);
    await d?.cleanup();
  });

  it('is the one the prune after it goes by', async () => {
    const old = await d.backup();
    await redate(d, old.Name, new Date(Date.now() - 5 * DAY));
    // The last success was three days ago: a backup is due.
    const configFile = path.join(d.home, 'config.json');
    const config = JSON.parse(await fs.readFile(configFile, 'utf8'));
    config.lastSuccessfulBackupTime = new Date(Date.now() - 3 * DAY).toISOString();
    await fs.writeFile(configFile, JSON.stringify(config));

    await gate.arm();
    const tick = spawnCli(d.home, ['Invoke-BackupScheduler']);
    await whileRunning(tick, 'the scheduled backup exporting its role', gate.held);
    expectOk(await d.cli(['Set-BackupShare', '-BackupRetentionPeriodInDays', '7']), 'Set-BackupShare (retention lengthened)');
    await gate.release();
    const ended = await tick;
    expect(ended.exitCode, String(ended.stderr)).toBe(0);

    const names = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).map((b) => b.Name);
    expect(names).toHaveLength(2);
    expect(names).toContain(old.Name);
  });
});
