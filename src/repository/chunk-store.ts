import type { Target } from '../targets/target.js';
import { ContentChunker } from './chunker.js';
import type { CdcParams } from './cdc.js';
import type { ChunkIndex } from './chunk-index.js';
import { ChunkRefList, type ChunkRefs } from './chunk-refs.js';
import { gearTable } from './gear.js';
import { writeIndexFiles } from './index-file.js';
import { chunkIdOf, type RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import { PackWriter, type PackWriterOptions, type WrittenPack } from './pack-writer.js';

/** One stream as the store keeps it: its chunks in order (what a backup's catalog will list per role). */
export interface StoredStream {
  chunks: ChunkRefList;
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
    const chunker = this.chunker();
    const sink = this.openStream();
    const out: Buffer[] = [];
    try {
      for await (const piece of source) {
        chunker.write(piece, out);
        await sink.put(out);
      }
      chunker.end(out);
      await sink.put(out);
    } finally {
      await sink.settle();
    }
    return sink.finish();
  }

  /** A new chunker with this repository's keyed table (one per stream, or per member of an archive). */
  chunker(): ContentChunker {
    return new ContentChunker({ gear: this.gear, params: this.opts.params, implementation: this.opts.implementation });
  }

  /** A stream whose chunks the caller cuts (or already knows): see StreamSink. */
  openStream(): StreamSink {
    return new StreamSink(this.keys, this.index, this.writer);
  }

  /**
   * Closes the open pack and indexes every pack written since the last commit. `packsInPlace` runs
   * between the two: every pack is under its final name and no index file names them yet.
   */
  async commit(packsInPlace?: () => Promise<void>): Promise<{ packs: WrittenPack[]; indexFiles: string[] }> {
    const packs = await this.writer.flush();
    await packsInPlace?.();
    const indexFiles = await writeIndexFiles(this.target, this.layout, this.keys, packs);
    for (const { hash, entries: e } of packs) {
      for (let i = 0; i < e.length; i++) this.index.addLocation(e.chunkIdAt(i), hash, e.offsetAt(i), e.lengthAt(i), e.plaintextLengthAt(i));
    }
    return { packs, indexFiles };
  }

  /** Gives up the open pack (after a failure); committed packs stay, to be indexed or pruned. */
  abort(): Promise<void> {
    return this.writer.abort();
  }
}

/**
 * One stream being stored, from chunks its caller cut: put() stores those not stored yet (new
 * chunks compress on worker threads while the next ones are cut and hashed, a bounded number at
 * once, so memory stays a few chunks whatever the stream); reuse() appends chunks known to be
 * stored (known()) without their bytes. Call settle() whatever happens, then finish().
 */
export class StreamSink {
  private readonly result: StoredStream = { chunks: new ChunkRefList(), bytes: 0, newChunks: 0, newBytes: 0, storedBytes: 0 };
  private readonly inFlight: Promise<void>[] = [];

  constructor(
    private readonly keys: RepositoryKeys,
    private readonly index: ChunkIndex,
    private readonly writer: PackWriter,
  ) {}

  /** In the index, or taken by this session's writer (stored by this backup, not yet indexed). */
  known(id: Buffer): boolean {
    return this.index.has(id) || this.writer.has(id);
  }

  /** Chunks appended so far: since(count), with count taken before some put() calls, gives what they appended. */
  get count(): number {
    return this.result.chunks.length;
  }

  /** Appends `chunks` (emptied) to the stream, in order, storing each one not stored yet. */
  async put(chunks: Buffer[]): Promise<void> {
    const { result } = this;
    for (const chunk of chunks) {
      const id = chunkIdOf(this.keys, chunk);
      result.chunks.push(id, chunk.length);
      result.bytes += chunk.length;
      if (this.index.has(id)) continue;
      const adding = this.writer.add(id, chunk).then((stored) => {
        if (stored === 0) return;
        result.storedBytes += stored;
        result.newChunks++;
        result.newBytes += chunk.length;
      });
      adding.catch(() => {}); // awaited below, in order; never unhandled meanwhile
      this.inFlight.push(adding);
      if (this.inFlight.length >= MAX_IN_FLIGHT) await this.inFlight.shift();
    }
    chunks.length = 0;
  }

  /** Appends chunks already stored (the caller checked known()), without their bytes. */
  reuse(refs: ChunkRefs): void {
    this.result.chunks.append(refs);
    for (let i = 0; i < refs.length; i++) this.result.bytes += refs.lengthAt(i);
  }

  /** The chunks appended from `from` (a count before some put()) to now. */
  since(from: number): ChunkRefs {
    return this.result.chunks.slice(from);
  }

  /** Waits for every chunk still being stored, failed or not. */
  async settle(): Promise<void> {
    await Promise.allSettled(this.inFlight);
  }

  /** The stream as stored; rejects if storing one of its chunks failed. */
  async finish(): Promise<StoredStream> {
    for (const adding of this.inFlight) await adding;
    return this.result;
  }
}
