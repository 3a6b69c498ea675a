import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChunkIndex } from '../../src/repository/chunk-index.js';
import { ChunkStore } from '../../src/repository/chunk-store.js';
import { deriveRepositoryKeys } from '../../src/repository/keys.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { readChunks } from '../../src/repository/pack-reader.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { inPieces, pseudoRandomBytes } from '../support/pseudo-random.js';
import { withNoMoreThreadsAsync } from '../support/thread-limit.js';

/**
 * A backup's packer threads under a limit on processes (pids.max, ulimit -u: each thread counts).
 * Defect this pinned: a packer thread that could not be started (new Worker throwing
 * ERR_WORKER_INIT_FAILED 'EAGAIN') failed the role at once as "Role X failed: EAGAIN", with the
 * advice to fix the role's source; the same work runs inline where there is no thread.
 */

const WORKER_SCRIPT = path.resolve('dist/repository/pack-worker.js');
const keys = deriveRepositoryKeys(Buffer.alloc(32, 7));
const layout = new RepositoryLayout();
let dir: string;
let target: LocalFolderTarget;

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'azs-packers-limit-'));
  target = new LocalFolderTarget(dir);
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('packers where no thread may be started', () => {
  it('pack inline, and every chunk reads back', async (ctx) => {
    const data = pseudoRandomBytes('packers-limit', 2 << 20);
    const index = new ChunkIndex();
    const stored = await withNoMoreThreadsAsync(async () => {
      const store = new ChunkStore(target, layout, keys, index, {
        params: { minSize: 4096, normalSize: 16384, maxSize: 65536 },
        packBytes: 512 * 1024,
        workers: 2,
        workerScript: WORKER_SCRIPT,
      });
      try {
        const stream = await store.storeStream(inPieces(data, 100_000));
        await store.commit();
        return stream;
      } finally {
        await store.dispose();
      }
    });
    if (!stored) return ctx.skip('no pids cgroup may be made here (needs root)');
    const chunks = await readChunks(
      target,
      layout,
      keys,
      [...stored.chunks].map((c) => index.get(c.id)!),
    );
    expect(Buffer.concat([...stored.chunks].map((c) => chunks.get(c.id.toString('hex'))!)).equals(data)).toBe(true);
  });
});
