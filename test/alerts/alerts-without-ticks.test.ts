import { promises as fs } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, type Drill, list } from '../support/cli.js';

/**
 * BackupOverdue and CertificateExpiring are raised by time alone, no job failing, and only the
 * scheduler tick looked at them. When the timer that runs the ticks was gone (a unit disabled by
 * an upgrade, a cron file not copied to a rebuilt machine), or was never installed because backups
 * are started by another orchestrator, no backup ran for days, certificates ran out, and
 * Get-BackupAlert listed nothing active: the one alert whose first remediation is "check the
 * scheduler" could only be raised by the scheduler. Now Get-BackupAlert reviews them as a tick
 * does before it lists, and a new one goes to the sinks.
 */

const DAY = 86_400_000;

let server: Server;
let webhook: string;
const received: any[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  webhook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

async function editConfig(d: Drill, edit: (config: any) => void): Promise<void> {
  const file = path.join(d.home, 'config.json');
  const config = JSON.parse(await fs.readFile(file, 'utf8'));
  edit(config);
  await fs.writeFile(file, JSON.stringify(config));
}

describe('alerts that time raises, with no scheduler tick running', () => {
  let d: Drill;
  afterAll(async () => {
    await d?.cleanup();
  });

  it('BackupOverdue: the scheduler is on, no tick ran, and the last backup is three days old', async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    expectOk(
      await d.cli(['Set-BackupShare', '-IsBackupSchedulerEnabled', '$true', '-BackupFrequencyInHours', '4', '-AlertWebhookUri', webhook]),
    );
    await d.backup();
    await editConfig(d, (c) => {
      c.lastSuccessfulBackupTime = new Date(Date.now() - 3 * DAY).toISOString();
    });
    received.length = 0;

    const active = list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json);
    expect(active.map((a) => a.AlertType)).toEqual(['BackupOverdue']);
    expect(active[0].DeliveryStatus).toBe('Delivered');
    expect(received.map((a) => [a.AlertType, a.Status])).toEqual([['BackupOverdue', 'Active']]);

    // Listing again is a repeat: nothing new is sent.
    expectOk(await d.cli(['Get-BackupAlert']));
    expect(received).toHaveLength(1);
    // A backup closes it, as ever.
    await d.backup();
    expect(list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json)).toEqual([]);
  });
});

describe('CertificateExpiring with no scheduler tick running', () => {
  let d: Drill;
  afterAll(async () => {
    await d?.cleanup();
  });

  it('is raised once the certificate has under 30 days left', async () => {
    d = await makeDrill({ encryption: 'certificate', roles: false });
    expect(list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json)).toEqual([]);
    // Eleven months later (the certificate's end, as recorded, ten days away).
    await editConfig(d, (c) => {
      c.encryption.certificates[0].notAfter = new Date(Date.now() + 10 * DAY).toISOString();
    });
    const active = list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json);
    expect(active.map((a) => a.AlertType)).toEqual(['CertificateExpiring']);
  });
});
