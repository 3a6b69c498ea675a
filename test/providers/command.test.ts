import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { STDERR_TAIL_BYTES } from '../../src/providers/child.js';
import { createProvider } from '../../src/providers/index.js';
import type { RoleDefinition } from '../../src/providers/provider.js';
import { describeWithAndWithoutAddons } from '../support/native-switch.js';
import { exportAll, halfThenFail } from '../support/provider-fixtures.js';

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-cmd-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const role = (exportCommand: string[], importCommand: string[] = ['true'], timeoutSeconds?: number): RoleDefinition => ({
  name: 'Configuration',
  provider: 'command',
  restoreOrder: 1,
  exportCommand,
  importCommand,
  timeoutSeconds,
});

/** Running, as opposed to gone or a zombie nobody reaped yet (pid 1 in a container may not). */
const alive = async (pid: number): Promise<boolean> => {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat !== undefined && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
};

async function failure(p: Promise<unknown>): Promise<AzsError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AzsError);
  return e as AzsError;
}

// Every case holds for both ways of starting programs (src/process/spawn.ts).
describeWithAndWithoutAddons('command provider', () => {
  // A shell pipeline without pipefail (`gunzip | app-import`) whose last step exits 0 early, or a
  // program that reads a header and stops, was reported as a role restored whole.
  it('an import program that exits 0 without reading its input to the end fails the import, and one that leaves only zero padding does not', async () => {
    const MiB = 1 << 20;
    const data = (n: number) => Buffer.alloc(n, 0x61);
    const out = path.join(tmp, 'out');
    const stops = await createProvider(role(['true'], ['sh', '-c', 'head -c 1000 > "$0"', out]));
    const e = await failure(stops.import(Readable.from([data(MiB), data(MiB), data(MiB), data(MiB)])));
    expect(e.errorId).toBe('CommandProviderInputNotRead');
    expect(e.message).toMatch(/without reading all of the role's data/);
    expect(e.recommendedAction).toMatch(/pipefail/);

    // What it needs, then only zeros (a tar's end-of-archive and padding): restored whole.
    const exact = await createProvider(role(['true'], ['sh', '-c', 'head -c 100000 > "$0"', out]));
    await exact.import(Readable.from([data(100_000), Buffer.alloc(MiB), Buffer.alloc(MiB), Buffer.alloc(MiB)]));
    expect((await fs.stat(out)).size).toBe(100_000);

    const reads = await createProvider(role(['true'], ['sh', '-c', 'cat > "$0"', out]));
    await reads.import(Readable.from([data(MiB), data(MiB), data(MiB), data(MiB)]));
    expect((await fs.stat(out)).size).toBe(4 * MiB);
  });

  it('an import program that has read all and exited before the stream says it ended: the import ends too', async () => {
    const out = path.join(tmp, 'out');
    const q = await createProvider(role(['true'], ['sh', '-c', 'head -c 4 > "$0"', out]));
    async function* thenEnd(): AsyncGenerator<Buffer> {
      yield Buffer.from('data');
      // The program has read its four bytes and gone (and its stdin been let go) before the end comes.
      await delay(500);
    }
    await q.import(Readable.from(thenEnd()));
    expect(await fs.readFile(out, 'utf8')).toBe('data');
  }, 10_000);

  it('runs without a shell: $(...) and other metacharacters stay literal', async () => {
    const marker = path.join(tmp, 'pwned');
    const arg = `$(touch ${marker}); touch ${marker} | & > ${marker} \`touch ${marker}\``;
    const p = await createProvider(role(['echo', arg]));
    expect((await exportAll(p)).toString()).toBe(`${arg}\n`);
    // The import program receives the argument as one literal string too.
    const out = path.join(tmp, 'out');
    const q = await createProvider(role(['true'], ['sh', '-c', 'cat > "$0"; printf "%s" "$1" > "$0.arg"', out, arg]));
    await q.import(Readable.from([Buffer.from('data')]));
    expect(await fs.readFile(out, 'utf8')).toBe('data');
    expect(await fs.readFile(`${out}.arg`, 'utf8')).toBe(arg);
    await expect(fs.access(marker)).rejects.toThrow();
  });

  it('kills the program and what it started when the time limit passes', async () => {
    const pidFile = path.join(tmp, 'pid');
    // The shell starts a grandchild that would keep stdout open; the whole group must die.
    const p = await createProvider(role(['sh', '-c', 'sleep 60 & echo $! > "$0"; wait', pidFile], ['true'], 1));
    const started = Date.now();
    const err = await failure(exportAll(p));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(err).toMatchObject({ errorId: 'CommandProviderTimeout', category: 'OperationTimeout' });
    expect(err.message).toMatch(/'sh'.*time limit of 1 s/);
    const pid = Number(await fs.readFile(pidFile, 'utf8'));
    await delay(200);
    expect(await alive(pid)).toBe(false);
  });

  it('holds the time limit even when a descendant left the group and keeps the pipe open', async () => {
    const pidFile = path.join(tmp, 'pid');
    const p = await createProvider(role(['sh', '-c', 'setsid sleep 60 & echo $! > "$0"; echo hi', pidFile], ['true'], 1));
    const started = Date.now();
    const err = await failure(exportAll(p));
    // 1 s limit, 5 s for SIGTERM to work, 1 s more for the pipes: well short of the 60 s it would wait.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(err).toMatchObject({ errorId: 'CommandProviderTimeout' });
    process.kill(Number(await fs.readFile(pidFile, 'utf8')), 'SIGKILL');
  });

  it('applies the time limit to import too', async () => {
    const p = await createProvider(role(['true'], ['sleep', '60'], 1));
    const err = await failure(p.import(Readable.from([Buffer.from('x')])));
    expect(err.errorId).toBe('CommandProviderTimeout');
  });

  it('an import command that fails reports its exit code and stderr', async () => {
    const p = await createProvider(role(['true'], ['sh', '-c', 'cat >/dev/null; echo "restore target is read-only" >&2; exit 5']));
    const err = await failure(p.import(Readable.from([Buffer.alloc(100_000)])));
    expect(err).toMatchObject({ errorId: 'CommandProviderFailed', exitCode: 1 });
    expect(err.message).toMatch(/import command 'sh'.*exited with code 5.*restore target is read-only/);
  });

  it('keeps only the tail of a long stderr', async () => {
    const p = await createProvider(
      role(['sh', '-c', 'i=0; while [ $i -lt 3000 ]; do echo "noise line $i" >&2; i=$((i+1)); done; echo "THE REAL REASON" >&2; exit 2']),
    );
    const err = await failure(exportAll(p));
    expect(err.message).toContain('THE REAL REASON');
    expect(err.message).not.toContain('noise line 1\n');
    expect(err.message.length).toBeLessThan(STDERR_TAIL_BYTES + 500);
  });

  it('repeats its stderr without the passwords of URIs in it', async () => {
    const p = await createProvider(
      role([
        'sh',
        '-c',
        'echo "cannot reach postgresql://app:S3cretPw@db.local/app (host=db password=Hunter22 sslmode=require)" >&2; exit 1',
      ]),
    );
    const err = await failure(exportAll(p));
    expect(err.message).toContain('postgresql://app:…@db.local/app');
    expect(err.message).toContain('password=…');
    expect(err.message).not.toMatch(/S3cretPw|Hunter22/);
  });

  it('a program that does not exist is a clear error', async () => {
    const err = await failure(exportAll(await createProvider(role([path.join(tmp, 'no-such-program')]))));
    expect(err).toMatchObject({ errorId: 'CommandProviderProgramNotFound', exitCode: 1 });
    expect(err.message).toContain('ENOENT');
  });

  it('a failing input stream kills the import program and rejects with the stream error', async () => {
    const pidFile = path.join(tmp, 'pid');
    const got = path.join(tmp, 'got');
    const p = await createProvider(role(['true'], ['sh', '-c', 'echo $$ > "$0"; exec cat > "$1"', pidFile, got]));
    const err = await p.import(halfThenFail(Buffer.alloc(1 << 20, 7), 'chunk 12 failed authentication')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String((err as Error).message)).toMatch(/chunk 12 failed authentication/);
    expect(err).toMatchObject({ errorId: 'CommandProviderInputFailed' });
    expect(await alive(Number(await fs.readFile(pidFile, 'utf8')))).toBe(false);
  });

  it('cancellation through the AbortSignal stops the program', async () => {
    const p = await createProvider(role(['sleep', '60']));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const err = await failure(exportAll(p, { signal: ac.signal }));
    expect(err).toMatchObject({ errorId: 'CommandProviderCancelled', exitCode: 130 });
  });

  it('a consumer that stops reading stops the program', async () => {
    const pidFile = path.join(tmp, 'pid');
    const p = await createProvider(role(['sh', '-c', 'echo $$ > "$0"; exec yes', pidFile]));
    const s = await p.export();
    for await (const _ of s) break; // destroys the stream
    await delay(300);
    expect(await alive(Number(await fs.readFile(pidFile, 'utf8')))).toBe(false);
  });

  it('tells the program its role and a side-by-side destination', async () => {
    const out = path.join(tmp, 'env');
    const p = await createProvider(
      role(
        ['sh', '-c', 'printf "%s" "$AZSBACKUP_ROLE"'],
        ['sh', '-c', 'printf "%s|%s" "$AZSBACKUP_ROLE" "$AZSBACKUP_DESTINATION" > "$0"', out],
      ),
    );
    expect((await exportAll(p)).toString()).toBe('Configuration');
    await p.import(Readable.from([Buffer.from('')]), { destination: '/restore/here' });
    expect(await fs.readFile(out, 'utf8')).toBe('Configuration|/restore/here');
  });

  it('streams large output without holding it', async () => {
    const p = await createProvider(role(['head', '-c', String(64 << 20), '/dev/zero']));
    const s = await p.export();
    let n = 0;
    for await (const c of s) n += (c as Buffer).length;
    expect(n).toBe(64 << 20);
  });
});
