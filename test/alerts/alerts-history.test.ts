import { randomUUID } from 'node:crypto';
import { promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ALERT_STATE_BYTES } from '../../src/alerts/alerts.js';
import { expectOk, makeDrill, type Drill, list } from '../support/cli.js';

/**
 * Every alert that closed stayed in alerts.json for good. A role that fails now and then opens
 * and closes BackupGeneral again and again (its description carrying the role's stderr), and over
 * a few years the file reached the 4 MB the store reads: the next raise wrote past it, and the read
 * after found the file "damaged", set it aside, and started afresh: the active alerts (a share
 * out of room, backups overdue) were gone from Get-BackupAlert, with one warning in a scheduler log.
 * Now the oldest closed alerts are let go as the history grows; active ones always stay.
 */

const DAY = 86_400_000;

describe('the closed alerts of years', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    expectOk(await d.cli(['Set-BackupShare', '-IsBackupSchedulerEnabled', '$true', '-BackupFrequencyInHours', '4']));
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('do not push the active alerts out of the store', async () => {
    const stderr = 'pg_dump: error: connection to server failed: FATAL: the database system is starting up\n'.repeat(40);
    const alert = (i: number, status: 'Active' | 'Closed', type = 'BackupGeneral') => {
      const when = new Date(Date.now() - ((5000 - i) * DAY) / 4).toISOString();
      return {
        Id: randomUUID(),
        AlertType: type,
        Severity: 'Warning',
        Title: 'A backup job failed',
        Description: `Backup ${randomUUID()} partly failed. Reports: ${stderr}`,
        Remediation: ['Read the error.', 'Fix it.', 'Run Start-InfrastructureBackup again.'],
        Status: status,
        FirstSeen: when,
        LastSeen: when,
        ClosedTime: status === 'Closed' ? when : null,
        BackupName: null,
        DeliveryError: null,
      };
    };
    // Closed alerts up to just under the 4 MB the store reads (a few thousand raised and closed).
    const one = JSON.stringify([alert(0, 'Closed')], null, 2).length;
    const alerts: object[] = Array.from({ length: Math.floor((MAX_ALERT_STATE_BYTES - 10_000) / one) - 1 }, (_, i) => alert(i, 'Closed'));
    alerts.push({ ...alert(4999, 'Active', 'ShareCapacity'), Severity: 'Critical', Title: 'The backup share is out of capacity' });
    // The oldest one's description fills the file to 300 bytes short of it: less than an alert.
    const oldest = alerts[0] as { Description: string };
    oldest.Description += 'x'.repeat(MAX_ALERT_STATE_BYTES - 300 - JSON.stringify(alerts, null, 2).length);
    const file = path.join(d.home, 'alerts.json');
    await fs.writeFile(file, JSON.stringify(alerts, null, 2), { mode: 0o600 });
    expect(statSync(file).size).toBeLessThan(MAX_ALERT_STATE_BYTES);

    // No backup for three days: BackupOverdue is raised (here by Get-BackupAlert's review).
    const configFile = path.join(d.home, 'config.json');
    const config = JSON.parse(await fs.readFile(configFile, 'utf8'));
    config.scheduler.enabledAt = new Date(Date.now() - 3 * DAY).toISOString();
    await fs.writeFile(configFile, JSON.stringify(config));
    expectOk(await d.cli(['Get-BackupAlert']));

    const again = await d.cli(['Get-BackupAlert', '-Status', 'Active']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/set aside/);
    expect(
      list(again.json)
        .map((a) => a.AlertType)
        .sort(),
    ).toEqual(['BackupOverdue', 'ShareCapacity']);
    // The history kept is the newest.
    const closed = list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Closed'])).json);
    expect(closed.length).toBeGreaterThan(0);
    expect(closed[0].ClosedTime).toBe((alerts.at(-2) as { ClosedTime: string }).ClosedTime);
  });
});
