import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnWithoutFork } from '../../src/native/posix-spawn.js';
import { spawnProgram, type SpawnedProgram, type SpawnOptions } from '../../src/process/spawn.js';
import { canRecycle } from '../../src/memory/recycling-readable.js';
import { describeWithAndWithoutAddons, setNativeAddons, useNativeAddons } from '../support/native-switch.js';

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-spawn-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const opts = (o: Partial<SpawnOptions> = {}): SpawnOptions => ({
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  stdin: false,
  stdout: true,
  stderr: true,
  newSession: false,
  ...o,
});

async function text(s: Readable | null): Promise<string> {
  let out = '';
  for await (const c of s!) out += String(c);
  return out;
}

async function run(
  file: string,
  args: string[],
  o?: Partial<SpawnOptions>,
): Promise<{ out: string; end: Awaited<SpawnedProgram['ended']> }> {
  const p = spawnProgram(file, args, opts(o));
  const [out, end] = await Promise.all([text(p.stdout), p.ended]);
  return { out, end };
}

/**
 * Minor page faults this process takes while it writes once more into 96 MiB it had already
 * written, after starting `true` through spawnProgram: fork() write-protects every page, so each
 * page faults again; posix_spawn leaves them alone.
 */
async function faultsAfterSpawn(native: boolean): Promise<number> {
  const restore = setNativeAddons(native);
  try {
    const big = Buffer.alloc(96 << 20);
    const touch = (): void => {
      for (let i = 0; i < big.length; i += 4096) big[i]!++;
    };
    touch();
    await spawnProgram('true', [], opts({ stdout: false, stderr: false })).ended;
    const before = process.resourceUsage().minorPageFault;
    touch();
    return process.resourceUsage().minorPageFault - before;
  } finally {
    restore();
  }
}

describe('spawning without fork', () => {
  useNativeAddons(true);

  it('is compiled and used here', () => {
    const p = spawnWithoutFork('true', [], opts({ stdout: false, stderr: false }));
    expect(p).toBeDefined();
    return p!.ended;
  });

  it("leaves the parent's memory writable, where Node's spawn costs a fault per page written again", async () => {
    const pages = (96 << 20) / 4096;
    expect(await faultsAfterSpawn(false)).toBeGreaterThan(pages / 2);
    expect(await faultsAfterSpawn(true)).toBeLessThan(pages / 20);
  });

  it('reads stdout into recycled memory when asked: every byte in order under backpressure, chunks handed back reused', async () => {
    const file = path.join(tmp, 'data.bin');
    const data = Buffer.alloc(24 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    await fs.writeFile(file, data);
    const p = spawnWithoutFork('cat', [file], opts({ pooledStdout: true }))!;
    const stdout = p.stdout!;
    expect(canRecycle(stdout)).toBe(true);
    const copies: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    let held: Buffer | undefined;
    // Piped, as a backup reads it (chunk by chunk; an async iterator would join what is buffered).
    const reader = new Writable({
      highWaterMark: 0,
      write(c: Buffer, _e, done) {
        copies.push(Buffer.from(c));
        memory.add(c.buffer);
        // Hold one chunk back: its slab must not be read into meanwhile.
        if (copies.length === 5) held = c;
        else if (canRecycle(stdout)) {
          stdout.recycle(c);
          c.fill(0xee); // it is free again: nothing may still need these bytes
        }
        if (copies.length % 16 === 0)
          setTimeout(done, 2); // a slow reader now and then
        else done();
      },
    });
    await pipeline(stdout, reader);
    expect((await p.ended).exitCode).toBe(0);
    expect(Buffer.concat(copies).equals(data)).toBe(true);
    expect(held!.equals(copies[4]!)).toBe(true);
    expect(copies.length).toBeGreaterThanOrEqual(24);
    expect(memory.size).toBeLessThan(8);
  });

  it('passes on no fd of ours beyond stdin, stdout and stderr', async () => {
    // Node opens its own close-on-exec, but not everything in a process does (a test runner's
    // channel here): Node's spawn would pass those on, posix_spawn is told to close them.
    const { out } = await run('ls', ['/proc/self/fd'], { stdin: true });
    expect(out.trim().split('\n').map(Number).sort()).toEqual([0, 1, 2, 3]); // 3: the folder ls reads
  });
});

// posix_spawn with the addons, Node's spawn without.
describeWithAndWithoutAddons('a program started', () => {
  it('gets its arguments literally, the PATH searched, and exactly the environment given', async () => {
    const { out, end } = await run('sh', ['-c', 'printf "%s|%s|" "$0" "$1"; env | sort', 'two words', '$(x) *'], {
      env: { PATH: process.env.PATH!, ONLY: 'this' },
    });
    expect(end).toEqual({ exitCode: 0 });
    expect(out.startsWith('two words|$(x) *|')).toBe(true);
    const vars = out
      .split('|')[2]!
      .trim()
      .split('\n')
      .map((l) => l.split('=')[0]);
    expect(vars.filter((v) => !['PWD', 'SHLVL', '_'].includes(v!))).toEqual(['ONLY', 'PATH']);
  });

  it('reads all of its stdin and ends at its end', async () => {
    const p = spawnProgram('sha256sum', [], opts({ stdin: true }));
    const data = Buffer.alloc(3 << 20, 0x5a);
    p.stdin!.end(data);
    const [out, end] = await Promise.all([text(p.stdout), p.ended]);
    expect(end).toEqual({ exitCode: 0 });
    expect(out.split(' ')[0]).toBe((await import('node:crypto')).createHash('sha256').update(data).digest('hex'));
  });

  it('settles only after its output has been read to the end', async () => {
    const p = spawnProgram('head', ['-c', String(8 << 20), '/dev/zero'], opts());
    let n = 0;
    let endedFirst = false;
    void p.ended.then(() => (endedFirst = n < 8 << 20));
    for await (const c of p.stdout!) {
      n += (c as Buffer).length;
      await new Promise((r) => setImmediate(r)); // a slow reader
    }
    await p.ended;
    expect(n).toBe(8 << 20);
    expect(endedFirst).toBe(false);
  });

  it('reports its exit code and stderr, and a signal that ended it', async () => {
    const p = spawnProgram('sh', ['-c', 'echo why >&2; exit 7'], opts());
    const [err, end] = await Promise.all([text(p.stderr), p.ended, text(p.stdout)]);
    expect(err).toBe('why\n');
    expect(end).toEqual({ exitCode: 7 });
    const q = spawnProgram('sleep', ['30'], opts({ stdout: false, stderr: false }));
    process.kill(q.pid!, 'SIGTERM');
    expect(await q.ended).toEqual({ signal: 'SIGTERM' });
  });

  it('starts with default signal handling, nothing blocked, and its own session when asked', async () => {
    const { out } = await run('sh', ['-c', 'grep -E "^(SigBlk|SigIgn)" /proc/self/status; cut -d" " -f6 /proc/self/stat; echo $$'], {
      newSession: true,
    });
    const [blocked, ignored, sid, pid] = out.trim().split('\n');
    const standard = (line: string): bigint => BigInt(`0x${line.split(/\s+/)[1]}`) & 0x7fffffffn; // 32 and up belong to glibc
    expect(standard(blocked!)).toBe(0n);
    // Node ignores SIGPIPE; a program that inherited that would not die on a closed pipe.
    expect(standard(ignored!)).toBe(0n);
    expect(sid).toBe(pid);
  });

  it('a program that cannot be found or run throws ENOENT or EACCES at once', async () => {
    expect(() => spawnProgram('no-such-program-azs', [], opts())).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => spawnProgram(path.join(tmp, 'missing'), [], opts())).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    const notExecutable = path.join(tmp, 'script.sh');
    await fs.writeFile(notExecutable, '#!/bin/sh\necho hi\n', { mode: 0o644 });
    expect(() => spawnProgram('script.sh', [], opts({ env: { PATH: tmp } }))).toThrow(expect.objectContaining({ code: 'EACCES' }));
  });
});
