import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AlertStore, type Alert } from '../../src/alerts/alerts.js';

let home: string;
let server: Server;
let received: Alert[];
let webhookUri: string;

beforeEach(async () => {
  home = mkdtempSync(join(tmpdir(), 'azs-alerts-'));
  received = [];
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      received.push(JSON.parse(body) as Alert);
      res.writeHead(req.url === '/fail' ? 500 : 204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  webhookUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
});
afterEach(async () => {
  await new Promise((r) => server.close(r));
  rmSync(home, { recursive: true, force: true });
});

/** A command sink: appends each alert it reads on stdin to a file, one JSON per line. */
function commandSink(): { command: string[]; log: string; lines: () => Alert[] } {
  const log = join(home, 'sink.log');
  const script = join(home, 'sink.mjs');
  writeFileSync(
    script,
    `import { appendFileSync } from 'node:fs'; let s = ''; process.stdin.on('data', (c) => s += c).on('end', () => appendFileSync(${JSON.stringify(log)}, s + '\\n'));`,
  );
  return {
    command: [process.execPath, script],
    log,
    lines: () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Alert)
        : [],
  };
}

describe('alerts', () => {
  it('one active alert per type, with its remediation steps; a repeat refreshes it; close closes it', async () => {
    const store = new AlertStore(home);
    const first = await store.raise('ShareAuthentication', 'refused', '6f1c2e34-0d4b-4d7e-9a8e-0b9d2b1e7c55');
    const again = await store.raise('ShareAuthentication', 'refused again');
    expect(again.Id).toBe(first.Id);
    expect(store.list()).toHaveLength(1);
    expect(first.Remediation.length).toBeGreaterThan(1);
    expect(first.Severity).toBe('Critical');
    await store.close(['ShareAuthentication']);
    expect(store.list()[0]).toMatchObject({ Status: 'Closed', Description: 'refused again' });
    const next = await store.raise('ShareAuthentication', 'refused once more');
    expect(next.Id).not.toBe(first.Id);
  });

  it('closing what is not active writes nothing (every successful backup closes its alert types)', async () => {
    const store = new AlertStore(home);
    await store.close(['ShareAuthentication', 'BackupGeneral']);
    expect(existsSync(join(home, 'alerts.json'))).toBe(false);
    await store.raise('ShareCapacity', 'full');
    const before = statSync(join(home, 'alerts.json'));
    await store.close(['ShareAuthentication', 'BackupGeneral']);
    const after = statSync(join(home, 'alerts.json'));
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    await store.close(['ShareCapacity']);
    expect(store.list()[0]).toMatchObject({ AlertType: 'ShareCapacity', Status: 'Closed' });
  });

  it('sends a new alert and its closing to the command and the webhook, not its repeats', async () => {
    const sink = commandSink();
    const store = new AlertStore(home, { command: sink.command, webhookUri });
    await store.raise('ShareCapacity', 'full');
    await store.raise('ShareCapacity', 'still full');
    await store.close(['ShareCapacity']);
    expect(sink.lines().map((a) => [a.AlertType, a.Status])).toEqual([
      ['ShareCapacity', 'Active'],
      ['ShareCapacity', 'Closed'],
    ]);
    expect(received.map((a) => [a.AlertType, a.Status])).toEqual([
      ['ShareCapacity', 'Active'],
      ['ShareCapacity', 'Closed'],
    ]);
    expect(received[0]!.Remediation.length).toBeGreaterThan(0);
  });

  it('a failing sink does not fail the job that raised the alert, and the alert says it was not delivered', async () => {
    const store = new AlertStore(home, { command: ['/nonexistent/program'], webhookUri: webhookUri.replace('/hook', '/fail') });
    await expect(store.raise('BackupGeneral', 'role failed')).resolves.toMatchObject({ Status: 'Active' });
    expect(store.list()).toHaveLength(1);
    expect(store.list()[0]!.DeliveryError).toMatch(/alert command \/nonexistent\/program failed.*; alert webhook answered 500/);
    // Delivered once the sinks work again: the closing clears it.
    await new AlertStore(home, { webhookUri }).close(['BackupGeneral']);
    expect(store.list()[0]).toMatchObject({ Status: 'Closed', DeliveryError: null });
  });
});
