import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AlertStore } from '../../src/alerts/alerts.js';
import { processesWith } from '../support/cli.js';

/**
 * The alert command (Set-BackupShare -AlertCommand) as an operator writes one: a shell script.
 * - One that wrote more than 1 MB to its standard output (a verbose curl, a mailer echoing what it
 *   sends) was killed mid-way by Node's output buffer limit, and its alert recorded as not
 *   delivered ("stdout maxBuffer length exceeded"), though nothing reads that output.
 * - One stuck past the 15 s limit was killed, but not what it had started (the `sleep`, the `curl`
 *   waiting on a dead server): each alert left such a process behind; and DeliveryError said
 *   "Command failed: <program>", not that it ran out of time.
 * Now its output goes nowhere, and a stuck one is stopped with everything it started, saying so.
 */

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'azs-alert-command-'));
});
afterEach(() => {
  rmSync(home, { recursive: true, force: true });
});

describe('the alert command', () => {
  it('may write megabytes to its output: the alert is delivered, the command ran to its end', async () => {
    const done = join(home, 'done');
    const command = ['sh', '-c', `cat >"${join(home, 'alert.json')}"; head -c 3000000 /dev/zero; echo sent >"${done}"`];
    const raised = await new AlertStore(home, { command }).raise('BackupGeneral', 'role failed');
    expect(new AlertStore(home).list()[0]).toMatchObject({ Id: raised.Id, DeliveryError: null });
    expect(existsSync(done)).toBe(true);
    expect(JSON.parse(readFileSync(join(home, 'alert.json'), 'utf8')).Id).toBe(raised.Id);
  });

  it('stuck past its time limit is stopped with what it started, and the alert says it ran out of time', async () => {
    const marker = `sleep 40.${process.pid}`;
    const command = ['sh', '-c', `cat >/dev/null; ${marker}; true`];
    await new AlertStore(home, { command }).raise('BackupGeneral', 'role failed');
    const [alert] = new AlertStore(home).list();
    expect(alert!.DeliveryError).toMatch(/time limit of 15 s/);
    expect(processesWith(marker)).toBe('');
  }, 40_000);
});
