import { describe, expect, it } from 'vitest';
import { ZstdDecoder, ZstdEncoder } from '../../src/pipeline/zstd-codec.js';
import { pseudoRandomBytes } from '../support/pseudo-random.js';
import { withNoMoreThreads } from '../support/thread-limit.js';

/**
 * zstd's worker threads under a limit on processes (a container's or service's pids.max, ulimit -u):
 * each thread counts as one, and where none may be started the encoder must still compress, on
 * its own thread. Defect this pinned: the first write failed with zstd's "Allocation error : not
 * enough memory", which reached the operator as BackupFailed with no advice (a backup under a
 * pids.max its other threads fitted, failing at its commit).
 */

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
