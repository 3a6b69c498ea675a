/**
 * What the blob target does beyond the conformance suite: its URLs, and how it rides out a
 * throttling or flaky endpoint. A real Azurite sits behind a small loopback proxy that answers the
 * requests it is told to with 503 or 429, or drops their connection, and forwards the rest.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobTarget } from '../../src/targets/blob.js';
import { parseShareLocation, type BlobLocation } from '../../src/targets/location.js';
import { startAzurite, type AzuriteServer } from '../support/azurite.js';
import { rejected } from '../support/errors.js';

type Fault = '503' | '429' | 'drop' | 'hang';

interface FaultyProxy {
  port: number;
  /** Faults for the next requests that match `when`, in order; then requests pass. */
  inject(faults: Fault[], when?: (req: http.IncomingMessage) => boolean): void;
  /** Every request from now on gets this fault. */
  always(fault: Fault | undefined): void;
  served: { fault: Fault; method: string; url: string }[];
  requests: number;
  close(): Promise<void>;
}

async function faultyProxy(upstreamPort: number): Promise<FaultyProxy> {
  let queue: Fault[] = [];
  let match: (req: http.IncomingMessage) => boolean = () => true;
  let forever: Fault | undefined;
  const proxy: Partial<FaultyProxy> = { served: [], requests: 0 };
  const server = http.createServer((req, res) => {
    proxy.requests!++;
    const fault = forever ?? (queue.length > 0 && match(req) ? queue.shift() : undefined);
    if (fault) {
      proxy.served!.push({ fault, method: req.method ?? '', url: req.url ?? '' });
      req.resume();
      if (fault === 'drop') {
        req.socket.destroy();
        return;
      }
      if (fault === 'hang') return; // never answers; closed with the proxy
      res.writeHead(Number(fault), {
        'x-ms-error-code': fault === '503' ? 'ServerBusy' : 'TooManyRequests',
        ...(fault === '429' ? { 'retry-after': '1' } : {}),
      });
      res.end();
      return;
    }
    const upstream = http.request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(proxy, {
    port: (server.address() as AddressInfo).port,
    inject(faults: Fault[], when: (req: http.IncomingMessage) => boolean = () => true) {
      queue = [...faults];
      match = when;
    },
    always(fault: Fault | undefined) {
      forever = fault;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  }) as FaultyProxy;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('blob container URLs', () => {
  it('takes Azure, Azure Stack Hub and Azurite (path-style) URLs, with or without a prefix', () => {
    expect(parseShareLocation('https://contoso01.blob.core.windows.net/backups')).toMatchObject({
      kind: 'blob',
      accountName: 'contoso01',
      container: 'backups',
      prefix: '',
      accountUrl: 'https://contoso01.blob.core.windows.net',
      port: 443,
    });
    expect(parseShareLocation('https://azsbackup.blob.local.azurestack.external/infra/site%20a/hub/')).toMatchObject({
      kind: 'blob',
      accountName: 'azsbackup',
      container: 'infra',
      prefix: 'site a/hub',
      accountUrl: 'https://azsbackup.blob.local.azurestack.external',
    });
    expect(parseShareLocation('http://127.0.0.1:10000/devstoreaccount1/backups/p')).toMatchObject({
      kind: 'blob',
      accountName: 'devstoreaccount1',
      container: 'backups',
      prefix: 'p',
      accountUrl: 'http://127.0.0.1:10000/devstoreaccount1',
      port: 10000,
    });
  });

  it('refuses a SAS or a key in the URL without repeating it, and names that are not a container', () => {
    const sas = 'sv=2024-08-04&ss=b&sig=TOPSECRETSIGNATURE%3D';
    for (const bad of [
      `https://acct.blob.core.windows.net/backups?${sas}`,
      `https://acct:TOPSECRETSIGNATURE@acct.blob.core.windows.net/backups`,
    ]) {
      let error: any;
      try {
        parseShareLocation(bad);
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ errorId: 'InvalidSharePath', exitCode: 2 });
      expect(JSON.stringify({ m: error.message, t: error.targetObject })).not.toContain('TOPSECRET');
    }
    for (const bad of [
      'https://acct.blob.core.windows.net/',
      'https://acct.blob.core.windows.net/Upper',
      'https://acct.blob.core.windows.net/a--b',
      'http://127.0.0.1:10000/devstoreaccount1',
      'https://acct.blob.core.windows.net/backups/../x',
    ]) {
      expect(() => parseShareLocation(bad), bad).toThrow(/not valid/);
    }
  });
});

describe('blob target against a throttling, flaky endpoint (Azurite behind a faulty proxy)', () => {
  let azurite: AzuriteServer;
  let proxy: FaultyProxy;
  let n = 0;
  const retry = { tries: 4, baseDelayMs: 20, maxDelayMs: 300, tryTimeoutMs: 1000 };
  const target = async () => {
    const container = `retry-${++n}`;
    await azurite.createContainer(container);
    const location = parseShareLocation(`http://127.0.0.1:${proxy.port}/${azurite.accountName}/${container}`) as BlobLocation;
    return new BlobTarget(location, { accountKey: azurite.accountKey }, { retry });
  };

  beforeAll(async () => {
    azurite = await startAzurite();
    proxy = await faultyProxy(azurite.port);
  });
  afterAll(async () => {
    await proxy?.close();
    await azurite?.stop();
  });

  it('retries 503, 429 and dropped connections, in the middle of a multi-block upload and of a ranged read, and loses nothing', async () => {
    const t = await target();
    const data = randomBytes(20 * 1024 * 1024);
    proxy.served.length = 0;
    // The second staged block: 503, then 429 with Retry-After, then its connection dropped; then it passes.
    let blocks = 0;
    proxy.inject(['503', '429', 'drop'], (req) => /comp=block(&|$)/.test(req.url ?? '') && ++blocks >= 2);
    expect(await t.write('big.bin', Readable.from([data.subarray(0, 7e6), data.subarray(7e6)]))).toEqual({ bytes: data.length });
    expect(proxy.served.map((s) => s.fault)).toEqual(['503', '429', 'drop']);
    expect(proxy.served.every((s) => s.method === 'PUT' && /comp=block/.test(s.url))).toBe(true);

    proxy.served.length = 0;
    proxy.inject(['drop', '503'], (req) => req.method === 'GET' && req.headers['x-ms-range'] !== undefined);
    const back = await readAll(await t.read('big.bin'));
    expect(proxy.served.map((s) => s.fault)).toEqual(['drop', '503']);
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('a request that hangs is given up after its time limit and tried again', async () => {
    const t = await target();
    proxy.served.length = 0;
    proxy.inject(['hang'], (req) => req.method === 'PUT');
    const started = Date.now();
    expect(await t.write('late.txt', Readable.from([Buffer.from('in the end')]))).toEqual({ bytes: 10 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(retry.tryTimeoutMs - 50);
    expect(proxy.served.map((s) => s.fault)).toEqual(['hang']);
    expect((await readAll(await t.read('late.txt'))).toString()).toBe('in the end');
  });

  it('gives up after the bounded tries with a typed error: ShareBusy for throttling, ShareUnreachable for dropped connections', async () => {
    const t = await target();
    await t.write('small.txt', Readable.from([Buffer.from('here')]));
    for (const [fault, errorId] of [
      ['503', 'ShareBusy'],
      ['429', 'ShareBusy'],
      ['drop', 'ShareUnreachable'],
    ] as const) {
      proxy.served.length = 0;
      proxy.always(fault);
      const started = Date.now();
      const e = await rejected(t.write('other.txt', Readable.from([Buffer.from('x')])));
      const took = Date.now() - started;
      proxy.always(undefined);
      expect(e).toMatchObject({ errorId, exitCode: 10, alertType: 'ShareConnectivity' });
      expect(e.message).toMatch(/4 tries/);
      expect(proxy.served).toHaveLength(retry.tries);
      // Three waits, none longer than maxDelayMs.
      expect(took).toBeLessThan(3 * retry.maxDelayMs + 2000);
    }
    // Nothing was lost or half written meanwhile.
    expect((await t.list('')).map((e) => e.name)).toEqual(['small.txt']);
    expect((await readAll(await t.read('small.txt'))).toString()).toBe('here');
  });
});
