import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AlertStore } from '../../src/alerts/alerts.js';

/**
 * The alert webhook (Set-BackupShare -AlertWebhookUri) as it is met in the field.
 * - One behind a redirect (http:// answering 301 to https://, a moved endpoint) had the alert
 *   followed there as a GET with no body, as fetch turns a POST on 301, 302 and 303: the endpoint
 *   answered 200 to that empty GET and the alert was recorded Delivered, though it never arrived.
 * - One that could not be reached, or never answered, left DeliveryError "fetch failed" or "The
 *   operation was aborted due to timeout": neither says it is the webhook, nor why.
 * Now a redirect is not followed: the alert is not delivered, and DeliveryError says where the
 * webhook redirects to (its origin: the rest may be a token), so the operator can set that address.
 * The other failures say it is the webhook, and why.
 */

let home: string;
let server: Server;
let base: string;
const hits: { method: string; url: string; body: string }[] = [];

beforeEach(async () => {
  home = mkdtempSync(join(tmpdir(), 'azs-alert-webhook-'));
  hits.length = 0;
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      hits.push({ method: req.method!, url: req.url!, body });
      if (req.url === '/moved') res.writeHead(301, { location: `${base}/new-hook` }).end();
      else if (req.url === '/silent')
        return; // never answers
      else res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(home, { recursive: true, force: true });
});

const stored = () => new AlertStore(home).list()[0]!;

describe('the alert webhook', () => {
  it('behind a redirect: the alert is not called delivered when only a GET with no body arrived', async () => {
    await new AlertStore(home, { webhookUri: `${base}/moved` }).raise('BackupGeneral', 'role failed');
    expect(stored().DeliveryError).toMatch(/^alert webhook answered 301 Moved Permanently, a redirect to http:\/\/127\.0\.0\.1:\d+\/…/);
    expect(hits.map((h) => [h.method, h.url])).toEqual([['POST', '/moved']]);
  });

  it('that cannot be reached: DeliveryError names the webhook and the reason', async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await new AlertStore(home, { webhookUri: `${base}/hook` }).raise('BackupGeneral', 'role failed');
    expect(stored().DeliveryError).toMatch(/^alert webhook could not be reached: .*ECONNREFUSED/);
    server = createServer().listen(0); // for afterEach
  });

  it('that never answers: DeliveryError says it did not answer within 15 s', async () => {
    await new AlertStore(home, { webhookUri: `${base}/silent` }).raise('BackupGeneral', 'role failed');
    expect(stored().DeliveryError).toMatch(/^alert webhook did not answer within 15 s/);
  }, 30_000);
});
