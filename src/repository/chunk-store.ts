import type { Target } from '../targets/target.js';
import { ContentChunker } from './chunker.js';
import type { CdcParams } from './cdc.js';
import type { ChunkIndex } from './chunk-index.js';
import { gearTable } from './gear.js';
import { writeIndexFiles } from './index-file.js';
import { CHUNK_ID_BYTES, type RepositoryKeys } from './keys.js';
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
    return new StreamSink(this.index, this.writer);
  }

  /**
   * Closes the open pack and indexes every pack written since the last commit. `packsInPlace` runs
   * between the two: every pack is under its final name and no index file names them yet.
   */
  async commit(packsInPlace?: () => Promise<void>): Promise<{ packs: WrittenPack[]; indexFiles: string[] }> {
    const packs = await this.writer.flush();
    await packsInPlace?.();
    const locations: ChunkLocation[] = packs.flatMap((p) => p.entries.map((e) => ({ ...e, pack: p.hash })));
    const indexFiles = await writeIndexFiles(this.target, this.layout, this.keys, locations);
    for (const loc of locations) this.index.add(loc);
    return { packs, indexFiles };
  }

  /** Gives up the open packs (after a failure); committed packs stay, to be indexed or pruned. */
  abort(): Promise<void> {
    return this.writer.abort();
  }

  /** Ends the worker threads (after commit or abort). */
  dispose(): Promise<void> {
    return this.writer.dispose();
  }
}

export interface ChunkRef {
  id: Buffer;
  length: number;
}

/** Chunks are sent to a packer in jobs of about this many bytes (fewer messages, a few MiB in flight). */
const JOB_BYTES = 2 * 1024 * 1024;
const JOB_CHUNKS = 1024;
/** Jobs of one stream being named and stored at once. */
const MAX_JOBS_IN_FLIGHT = 8;
/** Until its job comes back, a chunk's id is this (never a real id: refs are read after settle()). */
const UNNAMED = Buffer.alloc(0);

interface OpenJob {
  data: Buffer;
  used: number;
  lengths: number[];
  refs: ChunkRef[];
  after: (() => void)[];
}

/**
 * One stream being stored, from chunks its caller cut: put() sends them, copied into jobs of a
 * few MiB, to the writer's packers, which name them and store those not stored yet while the next
 * ones are cut (a bounded number of jobs at once, so memory stays a few MiB whatever the stream);
 * reuse() appends chunks known to be stored (known()) without their bytes. A chunk's ref gets its
 * id when its job comes back: after(fn) runs fn once every chunk put so far has one. Call settle()
 * whatever happens, then finish().
 */
export class StreamSink {
  private readonly result: StoredStream = { chunks: [], bytes: 0, newChunks: 0, newBytes: 0, storedBytes: 0 };
  private readonly inFlight: Promise<void>[] = [];
  private job: OpenJob | undefined;
  /** Settles once every job sent so far has come back, in order. */
  private tail: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly index: ChunkIndex,
    private readonly writer: PackWriter,
  ) {}

  /** In the index, or taken by this session's writer (stored by this backup, not yet indexed). */
  known(id: Buffer): boolean {
    return this.index.has(id) || this.writer.has(id);
  }

  /** Appends `chunks` (emptied; copied, so their memory is the caller's again) to the stream; their refs go to `refs` too. */
  async put(chunks: Buffer[], refs?: ChunkRef[]): Promise<void> {
    const { result } = this;
    for (const chunk of chunks) {
      const ref = { id: UNNAMED, length: chunk.length };
      result.chunks.push(ref);
      refs?.push(ref);
      result.bytes += chunk.length;
      let job = this.job;
      if (job && (job.used + chunk.length > job.data.length || job.lengths.length >= JOB_CHUNKS)) {
        await this.send();
        job = undefined;
      }
      job ??= this.job = { data: this.writer.spareJobs.take(chunk.length, JOB_BYTES), used: 0, lengths: [], refs: [], after: [] };
      job.used += chunk.copy(job.data, job.used);
      job.lengths.push(chunk.length);
      job.refs.push(ref);
    }
    chunks.length = 0;
  }

  /** Appends chunks already stored (the caller checked known()), without their bytes. */
  reuse(refs: readonly ChunkRef[]): void {
    for (const ref of refs) {
      this.result.chunks.push(ref);
      this.result.bytes += ref.length;
    }
  }

  /** Runs `fn` once every chunk put so far has its id (never, if storing one of them fails). */
  after(fn: () => void): void {
    if (this.job) this.job.after.push(fn);
    else void this.tail.then(fn, () => undefined);
  }

  /** Sends what is put and waits for every job, failed or not. */
  async settle(): Promise<void> {
    if (this.job) await this.send().catch(() => undefined);
    await Promise.allSettled(this.inFlight);
    await this.tail.catch(() => undefined);
  }

  /** The stream as stored; rejects if storing one of its chunks failed. */
  async finish(): Promise<StoredStream> {
    await this.settle();
    this.throwIfFailed();
    return this.result;
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }

  private async send(): Promise<void> {
    const job = this.job!;
    this.job = undefined;
    this.throwIfFailed();
    const stored = this.writer.store(job.data, Uint32Array.from(job.lengths), (id) => this.index.has(id));
    const done = stored.then(({ ids, sealed }) => {
      const { result } = this;
      for (let i = 0; i < job.refs.length; i++) {
        job.refs[i]!.id = ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
        if (sealed[i] === 0) continue;
        result.storedBytes += sealed[i]!;
        result.newChunks++;
        result.newBytes += job.lengths[i]!;
      }
    });
    done.catch((error: unknown) => {
      this.failure ??= { error };
    });
    this.tail = Promise.all([this.tail, done]).then(() => {
      for (const fn of job.after) fn();
    });
    this.tail.catch(() => {}); // awaited by settle(); never unhandled meanwhile
    this.inFlight.push(done);
    if (this.inFlight.length >= MAX_JOBS_IN_FLIGHT) await this.inFlight.shift()!.catch(() => undefined);
    this.throwIfFailed();
  }
}
