import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CdcParams } from '../../src/repository/cdc.js';
import { ChunkIndex } from '../../src/repository/chunk-index.js';
import { ChunkStore } from '../../src/repository/chunk-store.js';
import { decodeIndexFile, loadIndex, writeIndexFiles } from '../../src/repository/index-file.js';
import { encodeLocations } from '../../src/repository/locations.js';
import { chunkIdOf, deriveRepositoryKeys, type RepositoryKeys } from '../../src/repository/keys.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { MAX_PACK_TAIL_BYTES } from '../../src/repository/pack-format.js';
import { readChunks, readPackContents, type ChunkLocation } from '../../src/repository/pack-reader.js';
import { PackWriter } from '../../src/repository/pack-writer.js';
import { listPacks, rebuildIndexFromPacks } from '../../src/repository/rebuild.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { shareError } from '../../src/targets/share-errors.js';
import { rejected, thrown } from '../support/errors.js';
import { inPieces, pseudoRandomBytes } from '../support/pseudo-random.js';

const SMALL: CdcParams = { minSize: 4096, normalSize: 16384, maxSize: 65536 };
const PACK_BYTES = 256 * 1024;

let dir: string;
let target: LocalFolderTarget;
const layout = new RepositoryLayout();
const keys: RepositoryKeys = deriveRepositoryKeys(Buffer.alloc(32, 3));

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'azs-repo-'));
  target = new LocalFolderTarget(dir);
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function newStore(index = new ChunkIndex()): ChunkStore {
  return new ChunkStore(target, layout, keys, index, { params: SMALL, packBytes: PACK_BYTES });
}

/** 2 MiB: half JSON-like text (compresses), half random (does not). */
function corpus(label: string): Buffer {
  const text = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `{"id":${i},"name":"record ${label} ${i}","ok":true}\n`).join(''));
  return Buffer.concat([text.subarray(0, 1 << 20), pseudoRandomBytes(label, 1 << 20)]);
}

const sortedById = (locs: Iterable<ChunkLocation>) =>
  [...locs].map((l) => ({ ...l, chunkId: l.chunkId.toString('hex') })).sort((a, b) => a.chunkId.localeCompare(b.chunkId));

async function restore(index: ChunkIndex, ids: Buffer[]): Promise<Buffer> {
  const chunks = await readChunks(
    target,
    layout,
    keys,
    ids.map((id) => index.get(id)!),
  );
  return Buffer.concat(ids.map((id) => chunks.get(id.toString('hex'))!));
}

async function packFile(hash: string): Promise<string> {
  return path.join(dir, layout.packPath(hash));
}

describe('chunk store', () => {
  it('stores a stream and gives it back byte for byte from the packs', async () => {
    const store = newStore();
    const data = corpus('a');
    const stored = await store.storeStream(inPieces(data, 65_536));
    const { packs, indexFiles } = await store.commit();
    expect(stored.bytes).toBe(data.length);
    expect(stored.newChunks).toBe(stored.chunks.length);
    expect(packs.length).toBeGreaterThan(1);
    expect(indexFiles).toEqual([expect.stringMatching(/^[0-9a-f]{64}$/)]);
    expect(
      (
        await restore(
          store.index,
          [...stored.chunks].map((c) => c.id),
        )
      ).equals(data),
    ).toBe(true);
  });

  it('stores each chunk once: the same data again adds nothing, an edited copy only what changed', async () => {
    const store = newStore();
    const data = corpus('dedup');
    const first = await store.storeStream(inPieces(data, 65_536));
    await store.commit();
    const packsBefore = await listPacks(target, layout);

    const again = await store.storeStream(inPieces(data, 100_000));
    expect(again.newChunks).toBe(0);
    expect((await store.commit()).packs).toEqual([]);
    expect(await listPacks(target, layout)).toEqual(packsBefore);
    expect([...again.chunks].map((c) => c.id.toString('hex'))).toEqual([...first.chunks].map((c) => c.id.toString('hex')));

    const edited = Buffer.from(data);
    edited.write('a few changed bytes', 1_500_000);
    const third = await store.storeStream(inPieces(edited, 65_536));
    expect(third.newChunks).toBeGreaterThanOrEqual(1);
    expect(third.newChunks).toBeLessThanOrEqual(2);
    await store.commit();
    expect(
      (
        await restore(
          store.index,
          [...third.chunks].map((c) => c.id),
        )
      ).equals(edited),
    ).toBe(true);
  });

  it('stores a chunk that repeats within one stream once', async () => {
    const block = pseudoRandomBytes('repeat', 200_000);
    const store = newStore();
    const stored = await store.storeStream(inPieces(Buffer.concat([block, block, block, block]), 65_536));
    const { packs } = await store.commit();
    expect(stored.newChunks).toBeLessThan(stored.chunks.length);
    expect(packs.flatMap((p) => [...p.entries]).length).toBe(stored.newChunks);
    expect(new Set(packs.flatMap((p) => [...p.entries].map((e) => e.chunkId.toString('hex')))).size).toBe(stored.newChunks);
  });

  it('streams: what it has read runs ahead of what reached the share by a few MiB at most, however long the input', async () => {
    class CountingShare extends LocalFolderTarget {
      stored = 0;
      override write(p: string, data: Readable): Promise<{ bytes: number }> {
        const count = new Transform({
          transform: (piece: Buffer, _enc, done) => {
            this.stored += piece.length;
            done(null, piece);
          },
        });
        return super.write(p, data.pipe(count));
      }
    }
    const share = new CountingShare(dir);
    const store = new ChunkStore(share, layout, keys, new ChunkIndex(), { packBytes: 4 << 20 });
    let read = 0;
    let worstLag = 0;
    async function* source(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 64; i++) {
        worstLag = Math.max(worstLag, read - share.stored);
        const piece = pseudoRandomBytes(`stream ${i}`, 1 << 20); // does not compress: stored bytes track read bytes
        read += piece.length;
        yield piece;
      }
    }
    await store.storeStream(source());
    await store.commit();
    expect(share.stored).toBeGreaterThan(64 << 20);
    // one chunk being cut (≤ 1 MiB), the jobs being named and sealed (8 slots of 2 MiB), the
    // pack stream's 1 MiB buffer, one piece
    expect(worstLag).toBeLessThanOrEqual(20 << 20);
  });

  it('rolls to a new pack at the size limit and leaves no pending file behind', async () => {
    const store = newStore();
    await store.storeStream(inPieces(pseudoRandomBytes('roll', 2 << 20), 65_536));
    const { packs } = await store.commit();
    expect(packs.length).toBeGreaterThanOrEqual(8);
    for (const p of packs) expect(p.size <= PACK_BYTES + MAX_PACK_TAIL_BYTES || p.entries.length === 1).toBe(true);
    const files = (await target.listTree(layout.packsFolder)).filter((e) => !e.isDirectory);
    expect(files.map((f) => layout.packHashOf(f.path)).sort()).toEqual(packs.map((p) => p.hash).sort());
  });
});

describe('pack writer on a failing share', () => {
  it('passes the share error on, and leaves neither a pack nor a pending file', async () => {
    class FullShare extends LocalFolderTarget {
      override async write(p: string, data: Readable): Promise<{ bytes: number }> {
        if (!p.includes('.pending-')) return super.write(p, data);
        let seen = 0;
        for await (const piece of data) if ((seen += (piece as Buffer).length) > 100_000) break;
        throw shareError('ShareCapacity', 'The share is full (test).', { targetObject: p });
      }
    }
    const store = new ChunkStore(new FullShare(dir), layout, keys, new ChunkIndex(), { params: SMALL, packBytes: PACK_BYTES });
    const err = await rejected(store.storeStream(inPieces(pseudoRandomBytes('full', 1 << 20), 65_536)).then(() => store.commit()));
    expect(err.alertType).toBe('ShareCapacity');
    await store.abort();
    expect((await target.listTree(layout.packsFolder)).filter((e) => !e.isDirectory)).toEqual([]);
  });
});

describe('index', () => {
  it('written as files, loaded again, and rebuilt from the packs alone, is the same index', async () => {
    const store = newStore();
    await store.storeStream(inPieces(corpus('one'), 65_536));
    await store.commit();
    await store.storeStream(inPieces(corpus('two'), 65_536));
    await store.commit();
    expect((await target.list(layout.indexFolder)).length).toBe(2);

    const loaded = await loadIndex(target, layout, keys);
    const rebuilt = await rebuildIndexFromPacks(target, layout, keys);
    expect(loaded.size).toBe(store.index.size);
    expect(sortedById(loaded.entries())).toEqual(sortedById(store.index.entries()));
    expect(sortedById(rebuilt.entries())).toEqual(sortedById(store.index.entries()));
  });

  it('splits what one backup indexes into files a reader takes whole (2 MiB each), and loads them all', async () => {
    // 50,000 chunks (12 GiB of 256 KiB chunks, or 50,000 small files) in 1,600 packs: one file would be 2.4 MB.
    const locations = Array.from({ length: 50_000 }, (_, i) => ({
      chunkId: createHash('sha256').update(`chunk ${i}`).digest(),
      pack: createHash('sha256')
        .update(`pack ${i >> 5}`)
        .digest('hex'),
      offset: 48 + (i % 32) * 300_000,
      length: 300_000,
      plaintextLength: 262_144,
    }));
    const files = await writeIndexFiles(target, layout, keys, locations);
    expect(files.length).toBeGreaterThan(1);
    for (const f of files) expect((await fsp.stat(path.join(dir, layout.indexPath(f)))).size).toBeLessThanOrEqual(2 * 1024 * 1024);
    const loaded = await loadIndex(target, layout, keys);
    expect(loaded.size).toBe(50_000);
    expect(loaded.get(locations[49_999]!.chunkId)).toMatchObject({ pack: locations[49_999]!.pack, offset: locations[49_999]!.offset });
  });

  it('refuses an index file with a changed byte, by its name and by its authentication', async () => {
    const store = newStore();
    await store.storeStream(inPieces(corpus('idx'), 65_536));
    const [indexFile] = (await store.commit()).indexFiles;
    const file = path.join(dir, layout.indexPath(indexFile!));
    const bytes = await fsp.readFile(file);
    bytes[bytes.length - 40]! ^= 1;
    expect(thrown(() => decodeIndexFile(keys, indexFile!, bytes)).errorId).toBe('IndexDamaged');
    await fsp.writeFile(file, bytes);
    expect((await rejected(loadIndex(target, layout, keys))).errorId).toBe('IndexDamaged');
  });

  it('adds an encoded list as add() would one by one: a chunk listed twice keeps its first place', () => {
    const location = (i: number, pack: string) => ({
      chunkId: createHash('sha256').update(`chunk ${i}`).digest(),
      pack: createHash('sha256').update(pack).digest('hex'),
      offset: 48 + i * 100,
      length: 90 + i,
      plaintextLength: 200 + i,
    });
    const first = Array.from({ length: 3000 }, (_, i) => location(i, `a${i % 7}`));
    // Overlaps the first list (chunks 2000-2999 again, in other packs), and repeats itself.
    const second = [...Array.from({ length: 3000 }, (_, i) => location(2000 + i, `b${i % 5}`)), location(4500, 'c')];
    const oneByOne = new ChunkIndex();
    const encoded = new ChunkIndex();
    for (const list of [first, second]) {
      for (const l of list) oneByOne.add(l);
      encoded.addEncoded(encodeLocations(list), (detail) => new Error(detail));
    }
    expect(encoded.size).toBe(5000);
    expect([...encoded.entries()]).toEqual([...oneByOne.entries()]);
    expect(encoded.get(first[2500]!.chunkId)).toEqual(first[2500]);
    expect(encoded.packNames).toEqual(oneByOne.packNames);

    const bad = encodeLocations([location(1, 'x')]);
    bad.writeUInt32BE(1, bad.length - 16); // the pack ordinal of its one entry: only pack 0 is listed
    expect(() => new ChunkIndex().addEncoded(bad, (detail) => new Error(detail))).toThrow('entry 0 names a pack it does not list');
  });

  it('keeps entries compact: about 64 bytes each, whatever the count', () => {
    const index = new ChunkIndex();
    const all = randomBytes(32 * 100_000);
    const ids: Buffer[] = [];
    for (let i = 0; i < 100_000; i++) {
      const id = all.subarray(32 * i, 32 * (i + 1));
      ids.push(id);
      index.add({ chunkId: id, pack: `pack${i % 50}`, offset: i, length: 1000 + i, plaintextLength: 2000 + i });
    }
    expect(index.size).toBe(100_000);
    expect(index.bytesAllocated / index.size).toBeLessThanOrEqual(2 * 56 + 1);
    for (const i of [0, 4242, 99_999]) expect(index.get(ids[i]!)).toMatchObject({ pack: `pack${i % 50}`, offset: i, length: 1000 + i });
    expect(index.get(randomBytes(32))).toBeUndefined();
    expect(index.add({ chunkId: ids[7]!, pack: 'other', offset: 1, length: 1, plaintextLength: 1 })).toBe(false);
    expect(index.get(ids[7]!)!.pack).toBe('pack7');
  });
});

describe('tampering', () => {
  async function oneStoredCorpus() {
    const store = newStore();
    const data = corpus('tamper');
    const stored = await store.storeStream(inPieces(data, 65_536));
    await store.commit();
    return { store, data, ids: [...stored.chunks].map((c) => c.id) };
  }

  it('a changed byte in a pack fails the keyless check (its name) and the keyed one (its chunk)', async () => {
    const { store, ids } = await oneStoredCorpus();
    const victim = store.index.get(ids[3]!)!;
    const file = await packFile(victim.pack);
    const bytes = await fsp.readFile(file);
    bytes[victim.offset + 20]! ^= 0x40;
    await fsp.writeFile(file, bytes);
    expect((await rejected(readPackContents(target, layout, victim.pack))).errorId).toBe('PackDamaged');
    expect((await rejected(readChunks(target, layout, keys, [victim]))).errorId).toBe('ChunkNotAuthentic');
    expect((await rejected(rebuildIndexFromPacks(target, layout, keys))).errorId).toBe('PackDamaged');
  });

  it('a changed table of contents is refused even when the pack is renamed to its new hash', async () => {
    const { store, ids } = await oneStoredCorpus();
    const pack = store.index.get(ids[0]!)!.pack;
    const bytes = await fsp.readFile(await packFile(pack));
    bytes[bytes.length - 30]! ^= 1;
    await forgePack(pack, bytes);
    expect((await rejected(rebuildIndexFromPacks(target, layout, keys))).errorId).toBe('PackDamaged');
  });

  it('a chunk read from the place of another chunk is refused', async () => {
    const { store, ids } = await oneStoredCorpus();
    const a = store.index.get(ids[1]!)!;
    const b = store.index.get(ids[2]!)!;
    const err = await rejected(readChunks(target, layout, keys, [{ ...b, chunkId: a.chunkId }]));
    expect(err.errorId).toBe('ChunkNotAuthentic');
  });

  it('blobs swapped within a pack or moved into another pack are refused, though the packs hash right', async () => {
    // Equal-length chunks that do not compress give equal-length blobs: a swap keeps the table of contents valid.
    const writer = new PackWriter(target, layout, keys, { packBytes: 150_000 });
    const chunks = [0, 1, 2, 3].map((i) => pseudoRandomBytes(`swap ${i}`, 65_536));
    const ids = chunks.map((c) => chunkIdOf(keys, c));
    const memory = await writer.jobMemory();
    Buffer.concat(chunks).copy(memory.data);
    await writer.store(memory, Uint32Array.from(chunks.map((c) => c.length)), () => false);
    const [p1, p2] = await writer.flush();
    expect(p1!.entries.length).toBe(2);
    const [x1, x2] = p1!.entries;
    const [y1] = p2!.entries;

    const one = await fsp.readFile(await packFile(p1!.hash));
    const two = await fsp.readFile(await packFile(p2!.hash));
    const swapped = Buffer.from(one);
    one.copy(swapped, x1!.offset, x2!.offset, x2!.offset + x2!.length);
    one.copy(swapped, x2!.offset, x1!.offset, x1!.offset + x1!.length);
    const moved = Buffer.from(two);
    one.copy(moved, y1!.offset, x1!.offset, x1!.offset + x1!.length);
    const swappedHash = await forgePack(p1!.hash, swapped);
    const movedHash = await forgePack(p2!.hash, moved);

    const index = await rebuildIndexFromPacks(target, layout, keys); // the tables of contents still authenticate
    expect(index.get(ids[0]!)!.pack).toBe(swappedHash);
    for (const id of [ids[0]!, ids[1]!, ids[2]!])
      expect((await rejected(readChunks(target, layout, keys, [index.get(id)!]))).errorId).toBe('ChunkNotAuthentic');
    // Each pack has its own key: a blob moved into another pack opens there as nothing, even asked for as itself.
    const xAtY = { ...index.get(ids[2]!)!, chunkId: ids[0]!, pack: movedHash };
    expect((await rejected(readChunks(target, layout, keys, [xAtY]))).errorId).toBe('ChunkNotAuthentic');
  });
});

/** Writes `bytes` as a pack named by their hash and removes the original: what a share writer without the key could do. */
async function forgePack(original: string, bytes: Buffer): Promise<string> {
  const hash = createHash('sha256').update(bytes).digest('hex');
  await fsp.rm(await packFile(original));
  await fsp.mkdir(path.dirname(await packFile(hash)), { recursive: true });
  await fsp.writeFile(await packFile(hash), bytes);
  return hash;
}
