import { sharedCopier } from '../native/shared-copy.js';
import type { Target } from '../targets/target.js';
import { ContentChunker } from './chunker.js';
import { DEFAULT_CDC_PARAMS, type CdcParams } from './cdc.js';
import type { ChunkIndex } from './chunk-index.js';
import { ChunkRefList, type ChunkRefs } from './chunk-refs.js';
import { gearTable } from './gear.js';
import { writeIndexFiles } from './index-file.js';
import { CHUNK_ID_BYTES, type RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import { type JobMemory, PackWriter, type PackWriterOptions, type WrittenPack } from './pack-writer.js';

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
    writer?: PackWriter,
  ) {
    this.gear = gearTable(keys.gearSeed);
    this.writer = writer ?? ChunkStore.writerFor(target, layout, keys, opts);
    this.writer.everythingNew = index.size === 0;
  }

  /**
   * A store whose packers' threads start now, while its index is still loading (start-up of a
   * thread is tens of ms the other core would otherwise spend idle). Their threads end on
   * dispose(), also when the index fails to load.
   */
  static async opening(
    target: Target,
    layout: RepositoryLayout,
    keys: RepositoryKeys,
    index: Promise<ChunkIndex>,
    opts: ChunkStoreOptions = {},
  ): Promise<ChunkStore> {
    const writer = ChunkStore.writerFor(target, layout, keys, opts);
    try {
      return new ChunkStore(target, layout, keys, await index, opts, writer);
    } catch (e) {
      await writer.dispose();
      throw e;
    }
  }

  private static writerFor(target: Target, layout: RepositoryLayout, keys: RepositoryKeys, opts: ChunkStoreOptions): PackWriter {
    return new PackWriter(target, layout, keys, { ...opts, jobBytes: (opts.params ?? DEFAULT_CDC_PARAMS).maxSize });
  }

  async storeStream(source: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<StoredStream> {
    const chunker = this.chunker();
    const sink = this.openStream();
    const out: Buffer[][] = [];
    try {
      for await (const piece of source) {
        chunker.cut(piece, out);
        await sink.put(out);
      }
      chunker.cutEnd(out);
      await sink.put(out);
    } finally {
      await sink.settle();
    }
    return sink.finish();
  }

  /** Bytes below which a stream is one chunk whatever its contents: no cut falls before the minimum size (cdc.ts). */
  get wholeBelow(): number {
    return (this.opts.params ?? DEFAULT_CDC_PARAMS).minSize;
  }

  /** A new chunker with this repository's keyed table (one per stream, or per member of an archive). */
  chunker(): ContentChunker {
    return new ContentChunker({ gear: this.gear, params: this.opts.params, implementation: this.opts.implementation });
  }

  /** A stream whose chunks the caller cuts (or already knows): see StreamSink. */
  openStream(): StreamSink {
    return new StreamSink(this.index, this.writer);
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

  /** Gives up the packs written since the last commit (after a failure): none is indexed, so they go; indexed packs stay. */
  abort(): Promise<void> {
    return this.writer.abort();
  }

  /** Ends the worker threads (after commit or abort). */
  /** Packing threads started so far: a second one starts only for a backup that compresses (pack-writer.ts). */
  get threadCount(): number {
    return this.writer.threadCount;
  }

  /** Of those, the threads ready for jobs (until one is, the main thread packs: Packers.mainThread). */
  get readyThreadCount(): number {
    return this.writer.readyThreadCount;
  }

  dispose(): Promise<void> {
    return this.writer.dispose();
  }
}

/**
 * At most this many chunks go in one job (besides JOB_BYTES in pack-writer.ts). A folder of small
 * files makes a chunk per file, and every file of a job in flight is held (its walk entry, its
 * files cache record to come) until the job comes back: 256 rather than 1024 took a few MB off
 * the peak of the 5 GiB corpus's 26,000 small files, at the same speed (27 us a round trip).
 */
const JOB_CHUNKS = 256;
/** Until its job comes back, a chunk's id is this (never read: ids are read after after() or settle()). */
const UNNAMED = Buffer.alloc(32);

interface OpenJob {
  memory: JobMemory;
  used: number;
  lengths: number[];
  /** Where each of the job's chunks is in the stream's list (reuse() may append others between them). */
  places: number[];
  after: (() => void)[];
}

/**
 * One stream being stored, from chunks its caller cut: put() copies them into jobs of a few MiB
 * that the writer's packers name and store (those not stored yet) while the next ones are cut;
 * the writer's few job slots bound the memory whatever the stream. reuse() appends chunks known
 * to be stored (knownAs()) without their bytes. A chunk's ref gets its id when its job comes back:
 * after(fn) runs fn once every chunk put so far has one. Call settle() whatever happens, then
 * finish().
 */
export class StreamSink {
  private readonly result: StoredStream = { chunks: new ChunkRefList(), bytes: 0, newChunks: 0, newBytes: 0, storedBytes: 0 };
  private job: OpenJob | undefined;
  /** Settles (never rejects) once every job sent so far has come back, in order. */
  private tail: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | undefined;
  private readonly copy = sharedCopier();

  constructor(
    private readonly index: ChunkIndex,
    private readonly writer: PackWriter,
  ) {}

  /**
   * In the index with `length` plaintext bytes, or taken by this session's writer (stored by this
   * backup, not yet indexed). What another source of chunk refs (the files cache) says of a
   * chunk's length must agree with the index, whose lengths the catalog takes, or the catalog's
   * stream length is not the sum of its chunks.
   */
  knownAs(id: Buffer, length: number): boolean {
    const indexed = this.index.plaintextLengthOf(id);
    return indexed < 0 ? this.writer.has(id) : indexed === length;
  }

  /** Chunks appended so far: since(count), with count taken before some put() calls, gives what they appended. */
  get count(): number {
    return this.result.chunks.length;
  }

  /** The chunks appended from `from` (a count before some put()) to now, read from the stream's list as it is at each read. */
  since(from: number): ChunkRefs {
    const list = this.result.chunks;
    return {
      length: list.length - from,
      idAt: (i) => list.idAt(from + i),
      lengthAt: (i) => list.lengthAt(from + i),
      copyIdTo: (i, target, at) => list.copyIdTo(from + i, target, at),
    };
  }

  /**
   * Appends `chunks` (each a buffer or the run of slices it spans; the list is emptied) to the
   * stream, copied, so their memory is the caller's again once this settles.
   */
  async put(chunks: (Buffer | readonly Buffer[])[]): Promise<void> {
    const { result } = this;
    for (const chunk of chunks) {
      const length = Buffer.isBuffer(chunk) ? chunk.length : chunk.reduce((n, s) => n + s.length, 0);
      result.chunks.push(UNNAMED, length);
      result.bytes += length;
      let job = this.job;
      if (job && (job.used + length > job.memory.data.length || job.lengths.length >= JOB_CHUNKS)) {
        this.send();
        job = undefined;
      }
      if (!job) {
        this.throwIfFailed();
        job = this.job = { memory: await this.writer.jobMemory(), used: 0, lengths: [], places: [], after: [] };
      }
      if (Buffer.isBuffer(chunk)) job.used += this.copy(job.memory.data, job.used, chunk);
      else for (const slice of chunk) job.used += this.copy(job.memory.data, job.used, slice);
      job.lengths.push(length);
      job.places.push(result.chunks.length - 1);
    }
    chunks.length = 0;
  }

  /** Appends chunks already stored (the caller checked knownAs()), without their bytes. */
  reuse(refs: ChunkRefs): void {
    this.result.chunks.append(refs);
    for (let i = 0; i < refs.length; i++) this.result.bytes += refs.lengthAt(i);
  }

  /** Runs `fn` once every chunk put so far has its id (never, if storing one of them fails). */
  after(fn: () => void): void {
    if (this.job) this.job.after.push(fn);
    else
      this.tail = this.tail.then(() => {
        if (!this.failure) fn();
      });
  }

  /** Sends what is put and waits for every job, failed or not. */
  async settle(): Promise<void> {
    if (this.job) {
      if (this.failure) this.writer.releaseJobMemory(this.job.memory);
      else this.send();
      this.job = undefined;
    }
    await this.tail;
  }

  /** The stream as stored; rejects if storing one of its chunks failed. */
  async finish(): Promise<StoredStream> {
    await this.settle();
    this.throwIfFailed();
    return this.result;
  }

  /** Whether `error` is this stream's own failure: storing one of its chunks failed (the share, a packing thread). */
  failedWith(error: unknown): boolean {
    return this.failure !== undefined && this.failure.error === error;
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }

  private send(): void {
    const job = this.job!;
    this.job = undefined;
    const done = this.writer
      .store(job.memory, Uint32Array.from(job.lengths), (id) => this.index.has(id))
      .then(({ ids, sealed }) => {
        const { result } = this;
        for (let i = 0; i < job.lengths.length; i++) {
          result.chunks.setIdAt(job.places[i]!, ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES));
          if (sealed[i] === 0) continue;
          result.storedBytes += sealed[i]!;
          result.newChunks++;
          result.newBytes += job.lengths[i]!;
        }
      });
    const previous = this.tail;
    this.tail = (async () => {
      try {
        await done;
      } catch (error) {
        this.failure ??= { error };
      }
      await previous;
      if (!this.failure) for (const fn of job.after) fn();
    })();
  }
}
