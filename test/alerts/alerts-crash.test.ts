import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, killWhen, makeDrill, spawnCli, type Drill } from '../support/cli.js';

/**
 * An alert is recorded first and sent to the sinks after. A backup killed (kill -9) in between,
 * while its alert command ran, left the alert recorded and never sent: its repeats were not sent
 * either (only new alerts were), so an operator who watches the command or the webhook never heard
 * of the failure while it lasted. Now a repeat of an alert not yet delivered sends it, once.
 */

describe('an alert whose sending was cut short by a crash', () => {
  let d: Drill;
  let log: string;
  let hang: string;
  let started: string;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    await d.registerCommand('Broken', ['sh', '-c', 'echo export exploded >&2; exit 3'], ['sh', '-c', 'cat >/dev/null']);
    log = path.join(d.root, 'sink.log');
    hang = path.join(d.root, 'hang');
    started = path.join(d.root, 'sink.pid');
    const sink = path.join(d.root, 'sink.mjs');
    // While `hang` exists the sink notes its pid and hangs; otherwise it logs the alert it reads.
    await fs.writeFile(
      sink,
      `import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
if (existsSync(${JSON.stringify(hang)})) { writeFileSync(${JSON.stringify(started)}, String(process.pid)); setInterval(() => {}, 1000); }
else { let s = ''; process.stdin.on('data', (c) => (s += c)).on('end', () => appendFileSync(${JSON.stringify(log)}, s + '\\n')); }`,
    );
    expectOk(await d.cli(['Set-BackupShare', `-AlertCommand:${process.execPath}`, `-AlertCommand:${sink}`, '-SkipValidation']));
  });
  afterAll(async () => {
    const pid = Number(await fs.readFile(started, 'utf8').catch(() => '0'));
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await d?.cleanup();
  });

  const sent = async () =>
    (await fs.readFile(log, 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as { AlertType: string; Status: string });

  it('is sent by its next repeat, and only once', async () => {
    await fs.writeFile(hang, '');
    const child = spawnCli(d.home, ['Start-InfrastructureBackup']);
    await killWhen(child, 'the alert command started', () =>
      fs.access(started).then(
        () => true,
        () => false,
      ),
    );
    await fs.rm(hang);
    const recorded = expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json;
    expect([recorded].flat()).toMatchObject([{ AlertType: 'BackupGeneral' }]);
    expect(await sent()).toEqual([]);

    // The same role fails again: the alert repeats, and this time reaches the command.
    expect((await d.cli(['Start-InfrastructureBackup'])).code).toBe(3);
    expect((await sent()).map((a) => [a.AlertType, a.Status])).toEqual([['BackupGeneral', 'Active']]);
    // Delivered now: its further repeats are not sent.
    expect((await d.cli(['Start-InfrastructureBackup'])).code).toBe(3);
    expect((await sent()).map((a) => [a.AlertType, a.Status])).toEqual([['BackupGeneral', 'Active']]);
  });
});
