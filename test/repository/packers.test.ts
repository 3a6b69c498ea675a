import { existsSync } from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CdcParams } from '../../src/repository/cdc.js';
import { ChunkIndex } from '../../src/repository/chunk-index.js';
import { ChunkStore, type StoredStream } from '../../src/repository/chunk-store.js';
import { deriveRepositoryKeys, type RepositoryKeys } from '../../src/repository/keys.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { readChunks } from '../../src/repository/pack-reader.js';
import { listPacks } from '../../src/repository/rebuild.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { rejected } from '../support/errors.js';
import { inPieces, pseudoRandomBytes } from '../support/pseudo-random.js';

// The packers on worker threads (src/repository/pack-worker.ts) run from the build: the worker
// script is what the CLI loads. The same store, inline (0 workers), is the reference.
const WORKER_SCRIPT = path.resolve('dist/repository/pack-worker.js');
const SMALL: CdcParams = { minSize: 4096, normalSize: 16384, maxSize: 65536 };
const keys: RepositoryKeys = deriveRepositoryKeys(Buffer.alloc(32, 7));
const layout = new RepositoryLayout();

let dir: string;
let target: LocalFolderTarget;

beforeAll(() => {
  if (!existsSync(WORKER_SCRIPT)) throw new Error(`${WORKER_SCRIPT} is missing: run npm run build first (npm test does).`);
});
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'azs-packers-'));
  target = new LocalFolderTarget(dir);
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function storeWith(workers: number, opts: { packBytes?: number; workerScript?: string; index?: ChunkIndex } = {}): ChunkStore {
  return new ChunkStore(target, layout, keys, opts.index ?? new ChunkIndex(), {
    params: SMALL,
    packBytes: opts.packBytes ?? 512 * 1024,
    workers,
    workerScript: opts.workerScript ?? WORKER_SCRIPT,
  });
}

/** Until the store's first thread has loaded its modules (meanwhile the main thread packs: Packers.mainThread). */
async function threadReady(store: ChunkStore): Promise<void> {
  for (let i = 0; i < 500 && store.readyThreadCount === 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(store.readyThreadCount, 'the first packing thread started').toBe(1);
}

/** 3 MiB: text that compresses, then random bytes that do not, then the text again (dedup within the stream). */
function corpus(label: string): Buffer {
  const text = Buffer.from(Array.from({ length: 24_000 }, (_, i) => `{"id":${i},"name":"${label} ${i}"}\n`).join('')).subarray(0, 1 << 20);
  return Buffer.concat([text, pseudoRandomBytes(label, 1 << 20), text]);
}

async function restored(store: ChunkStore, stream: StoredStream): Promise<Buffer> {
  const chunks = await readChunks(
    target,
    layout,
    keys,
    [...stream.chunks].map((c) => store.index.get(c.id)!),
  );
  return Buffer.concat([...stream.chunks].map((c) => chunks.get(c.id.toString('hex'))!));
}

describe('packers on worker threads', () => {
  it('name and store exactly what inline packing does, and every chunk reads back', async () => {
    const data = corpus('same');
    const results: { ids: string[]; newChunks: number; newBytes: number }[] = [];
    for (const workers of [0, 2]) {
      const store = storeWith(workers);
      try {
        const stream = await store.storeStream(inPieces(data, 100_000));
        const { packs } = await store.commit();
        expect(packs.length).toBeGreaterThan(1);
        expect((await restored(store, stream)).equals(data)).toBe(true);
        results.push({ ids: [...stream.chunks].map((c) => c.id.toString('hex')), newChunks: stream.newChunks, newBytes: stream.newBytes });
      } finally {
        await store.dispose();
      }
    }
    expect(results[1]).toEqual(results[0]);
    // The repeated text is stored once.
    expect(results[0]!.newChunks).toBeLessThan(results[0]!.ids.length);
    expect(new Set(results[0]!.ids).size).toBe(results[0]!.newChunks);
  });

  it('pack on the main thread while the thread starts: the first jobs do not wait for it, and read back', async () => {
    const store = storeWith(2);
    try {
      const data = corpus('early');
      const stream = await store.storeStream(inPieces(data, 65_536));
      // A thread takes tens of milliseconds to load its modules; these 3 MiB took a few.
      expect(store.readyThreadCount).toBe(0);
      await store.commit();
      expect((await restored(store, stream)).equals(data)).toBe(true);
    } finally {
      await store.dispose();
    }
  });

  it('start the second thread for a backup that compresses, not for one whose chunks are stored already', async () => {
    const data = Buffer.concat([corpus('first'), corpus('more'), corpus('again')]);
    const first = storeWith(2);
    try {
      await threadReady(first);
      await first.storeStream(inPieces(data, 1 << 20));
      await first.commit();
      // Into an empty index everything is new: the jobs queued behind the first thread start the second.
      expect(first.threadCount).toBe(2);
    } finally {
      await first.dispose();
    }
    const next = storeWith(2, { index: first.index });
    try {
      await threadReady(next);
      const stream = await next.storeStream(inPieces(data, 1 << 20));
      expect(stream.newChunks).toBe(0);
      // Naming alone keeps up with one thread, however the jobs queued behind its start-up.
      expect(next.threadCount).toBe(1);
    } finally {
      await next.dispose();
    }
  });

  it('store a chunk that two streams give at once only once, whichever thread names it', async () => {
    const store = storeWith(2);
    try {
      const data = corpus('shared');
      const [a, b] = await Promise.all([store.storeStream(inPieces(data, 65_536)), store.storeStream(inPieces(data, 50_000))]);
      const { packs } = await store.commit();
      const stored = packs.flatMap((p) => Array.from({ length: p.entries.length }, (_, i) => p.entries.chunkIdAt(i).toString('hex')));
      expect(new Set(stored).size).toBe(stored.length);
      expect(a.newChunks + b.newChunks).toBe(stored.length);
      expect((await restored(store, a)).equals(data)).toBe(true);
      expect((await restored(store, b)).equals(data)).toBe(true);
    } finally {
      await store.dispose();
    }
  });

  it('leave no pending pack and fail the stream with PackWorkerFailed when a thread dies', async () => {
    const broken = path.join(dir, 'broken-worker.mjs');
    await fsp.writeFile(broken, "throw new Error('this thread cannot start');\n");
    const store = storeWith(2, { workerScript: broken });
    try {
      // The main thread packs the first jobs while the thread is starting: the stream may end
      // before the thread's failure is known, and then committing it fails.
      const storeAndCommit = async () => {
        await store.storeStream(inPieces(corpus('broken'), 65_536));
        await store.commit();
      };
      const err = await rejected(storeAndCommit());
      expect(err.errorId).toBe('PackWorkerFailed');
      expect(err.message).toContain('A backup worker thread failed');
      await store.abort();
      expect(await listPacks(target, layout)).toEqual([]);
    } finally {
      await store.dispose();
    }
  });
});
