import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigStore } from '../../src/config/store.js';
import { adoptLock, breakStale, processStartTime, tryLock, withLock } from '../../src/config/file-lock.js';

const run = promisify(execFile);
let home: string;

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'azs-config-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

describe('ConfigStore', () => {
  it('seals secrets: neither config.json nor any other file holds them in plaintext', async () => {
    const store = new ConfigStore(home);
    const password = 'Pa55-word-that-must-not-leak';
    await store.update((c) => ({
      ...c,
      share: { path: '/srv/b', userName: 'CONTOSO\\backup', password: store.seal(password, 'share-password') },
    }));
    for (const f of readdirSync(home)) {
      expect(readFileSync(join(home, f), 'utf8')).not.toContain(password);
      expect(readFileSync(join(home, f), 'utf8')).not.toContain(Buffer.from(password).toString('base64'));
    }
    const read = store.read();
    expect(store.open(read.share!.password!, 'share-password')).toBe(password);
    expect(() => store.open(read.share!.password!, 'encryption-key')).toThrow();
  });

  it('keeps every file readable by the owner only', async () => {
    const store = new ConfigStore(home);
    await store.update((c) => ({ ...c, share: { path: '/srv/b', password: store.seal('x', 'share-password') } }));
    expect(statSync(home).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(home)) expect(statSync(join(home, f)).mode & 0o077).toBe(0);
  });

  it('loses no change when many processes write at once', async () => {
    // Twelve real processes each add one role through a read-modify-write cycle.
    // Bundled inside the project so that bare imports resolve from node_modules.
    const bundleDir = mkdtempSync(join(process.cwd(), 'node_modules', '.azs-writer-'));
    const writer = join(bundleDir, 'writer.mjs');
    const { build } = await import('esbuild');
    await build({
      stdin: {
        contents: `import { ConfigStore } from ${JSON.stringify(new URL('../../src/config/store.ts', import.meta.url).pathname)};
await new ConfigStore(process.argv[2]).update((c) => ({ ...c, roles: [...c.roles, { name: 'R' + process.argv[3], provider: 'directory', restoreOrder: 1, path: '/x' }] }));`,
        resolveDir: process.cwd(),
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: writer,
      packages: 'external',
      logLevel: 'silent',
    });
    const state = join(home, 'state');
    try {
      await Promise.all(Array.from({ length: 12 }, (_, i) => run(process.execPath, [writer, state, String(i)])));
    } finally {
      rmSync(bundleDir, { recursive: true, force: true });
    }
    const names = new ConfigStore(state)
      .read()
      .roles.map((r) => r.name)
      .sort();
    expect(names).toEqual(Array.from({ length: 12 }, (_, i) => `R${i}`).sort());
  });

  it('reads the one certificate of a configuration from before several certificates as a list of one, and writes the list', async () => {
    const certificate = {
      thumbprint: 'A'.repeat(40),
      subject: 'CN=ops',
      notBefore: '2025-01-01T00:00:00.000Z',
      notAfter: '2027-01-01T00:00:00.000Z',
      publicKeyPem: '-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n',
      authenticationSecret: { sealed: 'sealed-secret' },
    };
    const roles = [{ name: 'CA', provider: 'directory', restoreOrder: 1, path: '/etc/pki' }];
    writeFileSync(join(home, 'config.json'), JSON.stringify({ encryption: { mode: 'Certificate', ...certificate }, roles }));
    const store = new ConfigStore(home);
    expect(store.read().encryption).toEqual({ mode: 'Certificate', certificates: [certificate] });
    expect(store.read().roles).toEqual(roles);
    await store.update((c) => c);
    expect(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')).encryption).toEqual({
      mode: 'Certificate',
      certificates: [certificate],
    });
    // A key, and a list, read as they are.
    writeFileSync(join(home, 'config.json'), JSON.stringify({ encryption: { mode: 'Key', keyId: 'k', key: { sealed: 's' } } }));
    expect(store.read().encryption).toEqual({ mode: 'Key', keyId: 'k', key: { sealed: 's' } });
  });

  it('refuses a damaged configuration with a clear error instead of resetting it', () => {
    writeFileSync(join(home, 'config.json'), '{ not json');
    expect(() => new ConfigStore(home).read()).toThrow(/not valid JSON/);
    expect(readFileSync(join(home, 'config.json'), 'utf8')).toBe('{ not json');
  });
});

describe('file locks', () => {
  it("a live holder keeps the lock; a dead holder's lock is taken over", async () => {
    const path = join(home, 'job.lock');
    const first = tryLock(path, 'first');
    expect(first.lock).toBeDefined();
    const second = tryLock(path, 'second');
    expect(second.lock).toBeUndefined();
    expect(second.holder?.purpose).toBe('first');
    first.lock!.release();

    const { stdout } = await run(process.execPath, ['-e', 'console.log(process.pid)']);
    writeFileSync(
      path,
      JSON.stringify({
        pid: Number(stdout),
        startTime: '1',
        hostname: (await import('node:os')).hostname(),
        acquiredAt: new Date().toISOString(),
        purpose: 'dead',
      }),
    );
    const third = tryLock(path, 'third');
    expect(third.lock).toBeDefined();
    third.lock!.release();
  });

  it('breaking a stale lock never moves or removes the live lock that took its place', async () => {
    // Two processes judged the same lock stale; the first broke it and took the lock. The second
    // breaks "the stale lock" now: the live lock must stay where it is, never moved aside for a
    // moment (a third process could take the lock in that moment, and two would hold it).
    const path = join(home, 'job.lock');
    const { stdout } = await run(process.execPath, ['-e', 'console.log(process.pid)']);
    const { hostname } = await import('node:os');
    const dead = { pid: Number(stdout), startTime: '1', hostname: hostname(), acquiredAt: new Date(0).toISOString(), purpose: 'dead' };
    const live = tryLock(path, 'live');
    expect(live.lock).toBeDefined();
    const before = readFileSync(path, 'utf8');
    const touched: string[] = [];
    const watcher = watch(home, (_event, name) => touched.push(String(name)));
    try {
      breakStale(path, dead);
      breakStale(path, undefined);
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      watcher.close();
    }
    expect(touched.filter((n) => n === 'job.lock')).toEqual([]);
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(tryLock(path, 'third').holder?.purpose).toBe('live');
    live.lock!.release();
  });

  it('a breaker killed while breaking leaves nothing that keeps the lock from being taken', async () => {
    const path = join(home, 'job.lock');
    const { stdout } = await run(process.execPath, ['-e', 'console.log(process.pid)']);
    const { hostname } = await import('node:os');
    const deadOwner = (purpose: string) =>
      JSON.stringify({ pid: Number(stdout), startTime: '1', hostname: hostname(), acquiredAt: new Date().toISOString(), purpose });
    writeFileSync(path, deadOwner('dead holder'));
    writeFileSync(`${path}.breaking`, deadOwner('breaking a stale lock'));
    const taken = tryLock(path, 'next');
    expect(taken.lock).toBeDefined();
    taken.lock!.release();
    expect(readdirSync(home).filter((n) => n.startsWith('job.lock'))).toEqual([]);
  });

  it('a lock handed over is adopted when it comes, however long its holder takes; not when the holder died or let it go', async () => {
    const path = join(home, 'job.lock');
    const { hostname } = await import('node:os');
    const holdBy = (pid: number) =>
      writeFileSync(
        path,
        JSON.stringify({
          pid,
          startTime: processStartTime(pid),
          hostname: hostname(),
          acquiredAt: new Date().toISOString(),
          purpose: 'job',
        }),
      );
    const starter = execFile('sleep', ['30']);
    try {
      holdBy(starter.pid!);
      const started = Date.now();
      setTimeout(() => holdBy(process.pid), 400);
      const adopted = await adoptLock(path, 10_000);
      expect(adopted).toBeDefined();
      expect(Date.now() - started).toBeGreaterThanOrEqual(350);
      adopted!.release();

      // A holder that lives and never hands over: until the time given, no longer.
      holdBy(starter.pid!);
      const waited = Date.now();
      expect(await adoptLock(path, 300)).toBeUndefined();
      expect(Date.now() - waited).toBeGreaterThanOrEqual(290);
    } finally {
      starter.kill();
    }
    await new Promise((r) => starter.once('exit', r));

    // The holder died before handing over, or let the lock go: at once, not after the time given.
    const gone = Date.now();
    expect(await adoptLock(path, 10_000)).toBeUndefined();
    rmSync(path);
    expect(await adoptLock(path, 10_000)).toBeUndefined();
    expect(Date.now() - gone).toBeLessThan(2_000);
  });

  it("a lock taken on another host is trusted for a while, then taken over (this host's name may have changed)", () => {
    const path = join(home, 'job.lock');
    const foreign = (purpose: string, minutesAgo: number) =>
      writeFileSync(
        path,
        JSON.stringify({
          pid: 1,
          startTime: null,
          hostname: 'container-before-restart',
          acquiredAt: new Date(Date.now() - minutesAgo * 60_000).toISOString(),
          purpose,
        }),
      );
    foreign('backup 6f1c', 60);
    expect(tryLock(path, 'mine').holder?.hostname).toBe('container-before-restart');
    foreign('backup 6f1c', 25 * 60);
    const job = tryLock(path, 'mine');
    expect(job.lock).toBeDefined();
    job.lock!.release();
    foreign('configuration', 1);
    expect(tryLock(path, 'mine').lock).toBeUndefined();
    foreign('configuration', 11);
    const config = tryLock(path, 'mine');
    expect(config.lock).toBeDefined();
    config.lock!.release();
  });

  it('withLock serialises concurrent critical sections', async () => {
    const path = join(home, 'c.lock');
    let inside = 0;
    let overlap = false;
    await Promise.all(
      Array.from({ length: 8 }, () =>
        withLock(path, 't', async () => {
          inside++;
          if (inside > 1) overlap = true;
          await new Promise((r) => setTimeout(r, 5));
          inside--;
        }),
      ),
    );
    expect(overlap).toBe(false);
  });
});
