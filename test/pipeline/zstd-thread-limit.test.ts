import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ZstdDecoder, ZstdEncoder } from '../../src/pipeline/zstd-codec.js';
import { pseudoRandomBytes } from '../support/pseudo-random.js';

/**
 * zstd's worker threads under a limit on processes (a container's or service's pids.max, ulimit -u):
 * each thread counts as one, and where none may be started the encoder must still compress, on
 * its own thread. Defect this pinned: the first write failed with zstd's "Allocation error : not
 * enough memory", which reached the operator as BackupFailed with no advice (a backup under a
 * pids.max its other threads fitted, failing at its commit).
 */

/** The pids cgroup hierarchy of this host (v1's pids controller, or v2's unified tree), if it may be written. */
function pidsRoot(): { root: string; own: string } | undefined {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  const v1 = lines.find((l) => /^\d+:pids:/.test(l));
  if (v1 && existsSync('/sys/fs/cgroup/pids/cgroup.procs')) return { root: '/sys/fs/cgroup/pids', own: v1.split(':')[2]! };
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2 && readFileSync('/sys/fs/cgroup/cgroup.controllers', { encoding: 'utf8', flag: 'r' }).includes('pids')) {
    return { root: '/sys/fs/cgroup', own: v2.slice(3) };
  }
  return undefined;
}

/** Runs `fn` with this process in a new pids cgroup that allows no thread more than it has now. */
function withNoMoreThreads<T>(fn: () => T): T | undefined {
  const where = (() => {
    try {
      return pidsRoot();
    } catch {
      return undefined;
    }
  })();
  if (!where) return undefined;
  const cg = path.join(where.root, `azs-test-threads-${process.pid}`);
  try {
    mkdirSync(cg);
    writeFileSync(path.join(cg, 'cgroup.procs'), String(process.pid));
  } catch {
    return undefined; // not root, or the hierarchy is not ours to change
  }
  try {
    writeFileSync(path.join(cg, 'pids.max'), readFileSync(path.join(cg, 'pids.current'), 'utf8').trim());
    return fn();
  } finally {
    writeFileSync(path.join(cg, 'pids.max'), 'max');
    writeFileSync(path.join(where.root, where.own, 'cgroup.procs'), String(process.pid));
    rmdirSync(cg);
  }
}

function decodeAll(frames: Buffer[]): Buffer {
  const decoder = new ZstdDecoder();
  const out: Buffer[] = [];
  let src = Buffer.concat(frames);
  for (;;) {
    const step = decoder.step(src);
    out.push(Buffer.from(step.output));
    src = src.subarray(step.consumed);
    if (src.length === 0 && !step.more) break;
  }
  return Buffer.concat(out);
}

describe('zstd with worker threads where no thread may be started', () => {
  it('compresses on its own thread, and the data decodes as it was', (ctx) => {
    const data = Buffer.concat([pseudoRandomBytes('zstd-threads', 1 << 20), Buffer.alloc(1 << 20, 'a')]);
    const frames = withNoMoreThreads(() => {
      const encoder = new ZstdEncoder({ level: 1, workers: 2 });
      const out: Buffer[] = [];
      encoder.write(data, out);
      encoder.end(out);
      return out.map((b) => Buffer.from(b));
    });
    if (!frames) return ctx.skip('no pids cgroup may be made here (needs root)');
    expect(decodeAll(frames).equals(data)).toBe(true);
  });
});
