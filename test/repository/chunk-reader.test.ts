import { existsSync } from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { recyclerOf } from '../../src/memory/recycling-readable.js';
import { BLOB_KEY_BYTES, LAYOUT_FIELDS, type BlobBatch } from '../../src/repository/blob-batch.js';
import { openBlob } from '../../src/repository/blob.js';
import type { Catalog } from '../../src/repository/catalog.js';
import { readCatalog } from '../../src/repository/chunk-reader.js';
import type { WorkerReply } from '../../src/repository/chunk-workers.js';
import { chunkIdOf, deriveRepositoryKeys, packKeyOf, type RepositoryKeys } from '../../src/repository/keys.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { ephemeralKeyOf, PACK_HEADER_BYTES } from '../../src/repository/pack-format.js';
import type { ChunkLocation } from '../../src/repository/pack-reader.js';
import { PackWriter } from '../../src/repository/pack-writer.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { thrown } from '../support/errors.js';
import { pseudoRandomBytes } from '../support/pseudo-random.js';

/**
 * A catalog read back (src/repository/chunk-reader.ts): chunks opened in batches, each chunk
 * authenticated before any byte of it is passed on, batches' memory reused once handed back.
 */

let dir: string;
let target: LocalFolderTarget;
const layout = new RepositoryLayout();
const keys: RepositoryKeys = deriveRepositoryKeys(Buffer.alloc(32, 5));

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'azs-reader-'));
  target = new LocalFolderTarget(dir);
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** Chunks of many sizes (text that compresses, random bytes that do not, an empty one, one of 3 MiB), in several packs. */
async function storedChunks(): Promise<{ chunks: Buffer[]; locations: ChunkLocation[] }> {
  const chunks = Array.from({ length: 60 }, (_, i) =>
    i % 3 === 0
      ? Buffer.from(`{"record":${i},"text":"${'x'.repeat(i * 37)}"}\n`.repeat(40 + i * 30))
      : pseudoRandomBytes(`chunk ${i}`, 1000 + ((i * 7919) % 200_000)),
  );
  chunks[7] = Buffer.alloc(0);
  chunks[40] = pseudoRandomBytes('large', 3 * 1024 * 1024);
  const writer = new PackWriter(target, layout, keys, { packBytes: 1024 * 1024, jobBytes: 4 * 1024 * 1024 });
  const ids = chunks.map((c) => chunkIdOf(keys, c));
  for (const c of chunks) {
    const job = await writer.jobMemory();
    c.copy(job.data);
    await writer.store(job, Uint32Array.of(c.length), () => false);
  }
  const byId = new Map<string, ChunkLocation>();
  for (const pack of await writer.flush()) for (const e of pack.entries) byId.set(e.chunkId.toString('hex'), { ...e, pack: pack.hash });
  return { chunks, locations: ids.map((id) => byId.get(id.toString('hex'))!) };
}

function catalogOf(locations: ChunkLocation[]): Catalog {
  return { streamLength: locations.reduce((n, l) => n + l.plaintextLength, 0), chunks: locations };
}

/**
 * Everything the stream gives, copied, read as a pipe reads (flowing: a piece as it was pushed);
 * each piece handed back right after when `recycle`. Resolves with the error it ends with, if any.
 */
function readAll(stream: Readable, recycle: boolean): Promise<{ bytes: Buffer; pieces: Buffer[]; error?: unknown }> {
  const giveBack = recycle ? recyclerOf(stream) : undefined;
  const copies: Buffer[] = [];
  const pieces: Buffer[] = [];
  return new Promise((resolve) => {
    stream.on('data', (piece: Buffer) => {
      copies.push(Buffer.from(piece));
      pieces.push(piece);
      giveBack?.(piece);
    });
    stream.on('end', () => resolve({ bytes: Buffer.concat(copies), pieces }));
    stream.on('error', (error) => resolve({ bytes: Buffer.concat(copies), pieces, error }));
  });
}

async function packBytes(pack: string): Promise<Buffer> {
  return fsp.readFile(path.join(dir, layout.packPath(pack)));
}

describe('reading a catalog', () => {
  it('gives back the stream byte for byte, across packs, a chunk read twice, an empty one and one larger than a batch', async () => {
    const { chunks, locations } = await storedChunks();
    expect(new Set(locations.map((l) => l.pack)).size).toBeGreaterThan(3);
    // A chunk the stream repeats lies behind the reader by then: its pack is read again from the start.
    const order = [...chunks.keys(), 2, 50, 5];
    const expected = Buffer.concat(order.map((i) => chunks[i]!));
    for (const recycle of [false, true]) {
      const { bytes, error } = await readAll(readCatalog(target, layout, keys, catalogOf(order.map((i) => locations[i]!))), recycle);
      expect(error).toBeUndefined();
      expect(bytes.equals(expected)).toBe(true);
    }
  });

  it('comes in pieces of several chunks each, whose memory goes round again once handed back', async () => {
    const { locations } = await storedChunks();
    const small = locations.filter((l) => l.plaintextLength < 1024 * 1024);
    const catalog = catalogOf(Array.from({ length: 8 }, () => small).flat());
    const kept = await readAll(readCatalog(target, layout, keys, catalog), false);
    const recycled = await readAll(readCatalog(target, layout, keys, catalog), true);
    expect(kept.pieces.length).toBeGreaterThan(20);
    expect(kept.pieces.length).toBeLessThan(catalog.chunks.length / 4);
    const memories = (pieces: Buffer[]) => new Set(pieces.map((p) => p.buffer)).size;
    // Never handed back, every piece is fresh memory; handed back, the few in flight at a time serve them all.
    expect(memories(kept.pieces)).toBe(kept.pieces.length);
    expect(memories(recycled.pieces)).toBeLessThanOrEqual(8);
    expect(recycled.bytes.equals(kept.bytes)).toBe(true);
  });

  /** Nothing from `from` on was passed on: what was is a prefix of the chunks before it (a stream drops what it buffered when it fails). */
  const onlyBefore = (bytes: Buffer, chunks: Buffer[], from: number) => {
    const before = Buffer.concat(chunks.slice(0, from));
    expect(bytes.length).toBeLessThanOrEqual(before.length);
    expect(bytes.equals(before.subarray(0, bytes.length))).toBe(true);
  };

  it('passes on nothing of a forged blob or after it, and fails with the error that blob gives on its own, whatever its batch', async () => {
    const { chunks, locations } = await storedChunks();
    for (const victim of [1, 20, 21, 59]) {
      const at = locations[victim]!;
      const original = await packBytes(at.pack);
      const forged = Buffer.from(original);
      forged[at.offset + Math.floor(at.length / 2)]! ^= 0x10;
      await fsp.writeFile(path.join(dir, layout.packPath(at.pack)), forged);
      try {
        const blobKey = packKeyOf(keys, ephemeralKeyOf(at.pack, forged.subarray(0, PACK_HEADER_BYTES)));
        const alone = thrown(() =>
          openBlob(keys, { pack: at.pack, blobKey }, at.chunkId, forged.subarray(at.offset, at.offset + at.length), at.plaintextLength),
        );
        const { bytes, error } = await readAll(readCatalog(target, layout, keys, catalogOf(locations)), true);
        expect(error).toBeInstanceOf(AzsError);
        expect((error as AzsError).errorId).toBe('ChunkNotAuthentic');
        expect((error as AzsError).message).toBe(alone.message);
        onlyBefore(bytes, chunks, victim);
      } finally {
        await fsp.writeFile(path.join(dir, layout.packPath(at.pack)), original);
      }
    }
  });

  it('passes on nothing from a missing pack on, and says the pack is missing', async () => {
    const { chunks, locations } = await storedChunks();
    const first = locations.findIndex((l) => l.pack !== locations[0]!.pack);
    await fsp.rm(path.join(dir, layout.packPath(locations[first]!.pack)));
    const { bytes, error } = await readAll(readCatalog(target, layout, keys, catalogOf(locations)), true);
    expect((error as AzsError).errorId).toBe('PackDamaged');
    expect((error as AzsError).message).toMatch(/is missing from the share/);
    onlyBefore(bytes, chunks, first);
  });
});

const WORKER_SCRIPT = fileURLToPath(new URL('../../dist/repository/chunk-worker.js', import.meta.url));

describe.skipIf(!existsSync(WORKER_SCRIPT))('the chunk worker thread (dist/)', () => {
  it('opens a batch into shared memory, and stops at a forged blob with the error openBlob gives', async () => {
    const { chunks, locations } = await storedChunks();
    const picked = [0, 1, 2, 3, 4, 5].map((i) => locations[i]!);
    expect(new Set(picked.map((l) => l.pack)).size).toBe(1);
    const pack = Buffer.from(await packBytes(picked[0]!.pack));
    const blobKey = packKeyOf(keys, ephemeralKeyOf(picked[0]!.pack, pack.subarray(0, PACK_HEADER_BYTES)));
    const victim = picked[4]!;
    pack[victim.offset + 40]! ^= 1;
    const input = new SharedArrayBuffer(picked.reduce((n, l) => n + l.length, 0));
    const output = new SharedArrayBuffer(picked.reduce((n, l) => n + l.plaintextLength, 0));
    const layoutOf: number[] = [];
    let inAt = 0;
    let outAt = 0;
    for (const l of picked) {
      pack.copy(Buffer.from(input), inAt, l.offset, l.offset + l.length);
      layoutOf.push(0, inAt, l.length, outAt, l.plaintextLength);
      inAt += l.length;
      outAt += l.plaintextLength;
    }
    expect(layoutOf.length).toBe(picked.length * LAYOUT_FIELDS);
    const batch: BlobBatch = {
      id: 7,
      chunkIdKey: new Uint8Array(keys.chunkId),
      packs: [picked[0]!.pack],
      blobKeys: new Uint8Array(blobKey.subarray(0, BLOB_KEY_BYTES)),
      input,
      output,
      layout: Uint32Array.from(layoutOf),
      chunkIds: new Uint8Array(Buffer.concat(picked.map((l) => l.chunkId))),
    };
    const worker = new Worker(WORKER_SCRIPT);
    try {
      const reply = await new Promise<WorkerReply>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.postMessage(batch);
      });
      const alone = thrown(() =>
        openBlob(keys, { pack: victim.pack, blobKey }, victim.chunkId, pack.subarray(victim.offset, victim.offset + victim.length)),
      );
      expect(reply).toMatchObject({ id: 7, opened: 4, error: { errorId: 'ChunkNotAuthentic', message: alone.message } });
      const opened = Buffer.concat(chunks.slice(0, 4));
      expect(Buffer.from(output, 0, opened.length).equals(opened)).toBe(true);
    } finally {
      await worker.terminate();
    }
  });
});
