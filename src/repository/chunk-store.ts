import type { Target } from '../targets/target.js';
import { ContentChunker } from './chunker.js';
import type { CdcParams } from './cdc.js';
import type { ChunkWorkers } from './chunk-workers.js';
import type { ChunkIndex } from './chunk-index.js';
import { gearTable } from './gear.js';
import { writeIndexFile } from './index-file.js';
import { chunkIdOf, type RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import type { ChunkLocation } from './pack-reader.js';
import { PackWriter, type PackWriterOptions, type WrittenPack } from './pack-writer.js';

/** One stream as the store keeps it: its chunks in order (what a backup's catalog will list per role). */
export interface StoredStream {
  chunks: { id: Buffer; length: number }[];
  bytes: number;
  /** Chunks of this stream that were not stored yet, and the plaintext bytes they hold. */
  newChunks: number;
  newBytes: number;
  /** What the new chunks take in packs (compressed and sealed): what this stream added to the share. */
  storedBytes: number;
}

export interface ChunkStoreOptions extends PackWriterOptions {
  params?: CdcParams;
  implementation?: 'auto' | 'typescript';
  /** Threads that compress new chunks (chunk-workers.ts); without them, compression runs inline. */
  workers?: ChunkWorkers;
}

/** New chunks being compressed and stored at once, per stream. */
const MAX_IN_FLIGHT = 8;

/**
 * The write side of a repository: cuts streams into chunks, stores each chunk not yet in the
 * index (or already taken in this session) once, and on commit() writes the index file for the
 * packs written, then adds them to the in-memory index. Order on the share: packs first, then the
 * index file that names them, then (the engine's part) the catalog that needs them, so anything a
 * committed catalog names is already stored.
 */
export class ChunkStore {
  private readonly gear: Uint32Array;
  private readonly writer: PackWriter;

  constructor(
    private readonly target: Target,
    private readonly layout: RepositoryLayout,
    private readonly keys: RepositoryKeys,
    readonly index: ChunkIndex,
    private readonly opts: ChunkStoreOptions = {},
  ) {
    this.gear = gearTable(keys.gearSeed);
    this.writer = new PackWriter(target, layout, keys, opts);
  }

  async storeStream(source: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<StoredStream> {
    const chunker = new ContentChunker({ gear: this.gear, params: this.opts.params, implementation: this.opts.implementation });
    const result: StoredStream = { chunks: [], bytes: 0, newChunks: 0, newBytes: 0, storedBytes: 0 };
    const out: Buffer[] = [];
    // New chunks compress on worker threads while the next ones are cut and hashed; a bounded
    // number at once, so memory stays a few chunks whatever the stream.
    const inFlight: Promise<void>[] = [];
    const take = async (): Promise<void> => {
      for (const chunk of out) {
        const id = chunkIdOf(this.keys, chunk);
        result.chunks.push({ id, length: chunk.length });
        result.bytes += chunk.length;
        if (this.index.has(id)) continue;
        const adding = this.writer.add(id, chunk, this.opts.workers).then((stored) => {
          if (stored === 0) return;
          result.storedBytes += stored;
          result.newChunks++;
          result.newBytes += chunk.length;
        });
        adding.catch(() => {}); // awaited below, in order; never unhandled meanwhile
        inFlight.push(adding);
        if (inFlight.length >= MAX_IN_FLIGHT) await inFlight.shift();
      }
      out.length = 0;
    };
    try {
      for await (const piece of source) {
        chunker.write(piece, out);
        await take();
      }
      chunker.end(out);
      await take();
    } finally {
      await Promise.allSettled(inFlight);
    }
    for (const adding of inFlight) await adding;
    return result;
  }

  /**
   * Closes the open pack and indexes every pack written since the last commit. `packsInPlace` runs
   * between the two: every pack is under its final name and no index file names them yet.
   */
  async commit(packsInPlace?: () => Promise<void>): Promise<{ packs: WrittenPack[]; indexFile?: string }> {
    const packs = await this.writer.flush();
    await packsInPlace?.();
    const locations: ChunkLocation[] = packs.flatMap((p) => p.entries.map((e) => ({ ...e, pack: p.hash })));
    if (locations.length === 0) return { packs };
    const indexFile = await writeIndexFile(this.target, this.layout, this.keys, locations);
    for (const loc of locations) this.index.add(loc);
    return { packs, indexFile };
  }

  /** Gives up the open pack (after a failure); committed packs stay, to be indexed or pruned. */
  abort(): Promise<void> {
    return this.writer.abort();
  }
}
