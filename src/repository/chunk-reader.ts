import { Readable } from 'node:stream';
import type { Target } from '../targets/target.js';
import { sharedCopier } from '../native/shared-copy.js';
import { recyclerOf, type RecyclingReadable } from '../memory/recycling-readable.js';
import { BLOB_KEY_BYTES, LAYOUT_FIELDS, type BatchResult, type BlobBatch } from './blob-batch.js';
import { MAX_CHUNK_BYTES } from './blob.js';
import { ChunkWorkers, openBlobBatch } from './chunk-workers.js';
import type { Catalog } from './catalog.js';
import { isAzsError } from '../errors.js';
import { chunkNotAuthentic, packDamaged } from './errors.js';
import { CHUNK_ID_BYTES, packKeyOf, type RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import type { ChunkLocation } from './pack-reader.js';
import { ephemeralKeyOf, PACK_HEADER_BYTES } from './pack-format.js';

/**
 * The pieces of a stream one at a time, as they were pushed (a Readable's async iterator joins
 * whatever is buffered into a new Buffer, which costs a copy and loses the pieces a reading target
 * takes back); at most two are held before the stream is paused.
 */
class Pieces {
  private readonly queue: Buffer[] = [];
  private ended = false;
  private error: unknown;
  private wake: (() => void) | undefined;

  constructor(private readonly stream: Readable) {
    const wake = (): void => {
      const w = this.wake;
      this.wake = undefined;
      w?.();
    };
    stream.on('data', (piece: Buffer) => {
      this.queue.push(piece);
      if (this.queue.length >= 2) stream.pause();
      wake();
    });
    stream.on('end', () => {
      this.ended = true;
      wake();
    });
    stream.on('error', (e) => {
      this.error ??= e;
      wake();
    });
  }

  /** The next piece; undefined at the end. */
  async next(): Promise<Buffer | undefined> {
    while (this.queue.length === 0) {
      if (this.error !== undefined) throw this.error;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.stream.resume();
      });
    }
    const piece = this.queue.shift()!;
    if (this.queue.length < 2) this.stream.resume();
    return piece;
  }

  close(): void {
    this.stream.destroy();
  }
}

/**
 * A pack read forward from its start, once: a restore asks for blobs in its catalog's order, which
 * within one pack is mostly the order they were written in, so one stream per pack serves them all
 * and the bytes between them are skipped. Asked for a blob behind it, the caller opens a new one.
 * Blobs are copied out; a piece of the stream is handed back to it once passed.
 */
class PackCursor {
  private readonly pieces: Pieces;
  private readonly giveBack: ((piece: Buffer) => void) | undefined;
  private held: Buffer = Buffer.alloc(0);
  /** Offset in the pack of held[0]. */
  private at = 0;
  /** Offset in the pack of the first byte not yet read. */
  private position = 0;
  blobKey?: Buffer;
  /** Batches' memory is shared with the worker that opens them (shared-copy.ts). */
  private readonly copyBytes = sharedCopier();

  constructor(
    readonly pack: string,
    stream: Readable,
  ) {
    this.pieces = new Pieces(stream);
    this.giveBack = recyclerOf(stream);
  }

  static async open(target: Target, layout: RepositoryLayout, keys: RepositoryKeys, pack: string): Promise<PackCursor> {
    let stream: Readable;
    try {
      stream = await target.read(layout.packPath(pack));
    } catch (e) {
      // A pack the backup needs and the share no longer has is damage to the backup, like a changed one.
      if (isAzsError(e) && e.errorId === 'TargetObjectNotFound') throw packDamaged(pack, 'it is missing from the share', e);
      throw e;
    }
    const cursor = new PackCursor(pack, stream);
    const header = Buffer.alloc(PACK_HEADER_BYTES);
    await cursor.copy(0, header);
    cursor.blobKey = packKeyOf(keys, ephemeralKeyOf(pack, header));
    return cursor;
  }

  /** True when a read at `offset` can still be served (it is not behind what was passed). */
  reaches(offset: number): boolean {
    return offset >= this.position;
  }

  /** Copies the `into.length` bytes at `offset` into `into`. */
  async copy(offset: number, into: Buffer): Promise<void> {
    if (offset < this.position) throw new RangeError(`pack ${this.pack}: offset ${offset} is behind the cursor (${this.position})`);
    const end = offset + into.length;
    let from = offset;
    while (from < end) {
      if (from >= this.at + this.held.length) {
        const seen = this.at + this.held.length;
        this.giveBack?.(this.held);
        const piece = await this.pieces.next();
        if (!piece) throw packDamaged(this.pack, `it ends at byte ${seen}, before the blob at ${offset}`);
        this.at = seen;
        this.held = piece;
        continue;
      }
      const n = Math.min(end, this.at + this.held.length) - from;
      this.copyBytes(into, from - offset, this.held.subarray(from - this.at, from - this.at + n));
      from += n;
    }
    this.position = end;
  }

  close(): void {
    this.pieces.close();
  }
}

/** At most this many packs are open at once while a role is read. */
const OPEN_PACKS = 4;
/** Blobs and chunks per batch, in bytes, unless one chunk alone is larger. */
const BATCH_BYTES = 1024 * 1024;
/** Chunks per batch at most (its message grows with them). */
const BATCH_CHUNKS = 256;
/** Batches being opened at once ahead of the one the reader is at. */
const BATCHES_AHEAD = 3;
/** Spare memory kept for the next batches: enough for those in flight and those on their way to the provider. */
const SPARE_SLABS = 10;

/**
 * Shared memory for batches, BATCH_BYTES a slab; a slab given back is used again, so a restore
 * works in a few hot MiB rather than fresh memory for every chunk. A larger one-off request gets
 * memory of its own, never kept.
 */
class Slabs {
  private readonly spare: SharedArrayBuffer[] = [];

  take(min: number): SharedArrayBuffer {
    return min <= BATCH_BYTES ? (this.spare.pop() ?? new SharedArrayBuffer(BATCH_BYTES)) : new SharedArrayBuffer(min);
  }

  giveBack(slab: SharedArrayBuffer): void {
    if (slab.byteLength === BATCH_BYTES && this.spare.length < SPARE_SLABS) this.spare.push(slab);
  }
}

/** A batch being filled: its blobs copied into `input`, its chunks to come in `output`. */
class BatchBuilder {
  private readonly packs: string[] = [];
  private readonly blobKeys: Buffer[] = [];
  private readonly packIndex = new Map<string, number>();
  private readonly layout: number[] = [];
  private readonly chunkIds: Buffer[] = [];
  private inAt = 0;
  outAt = 0;

  constructor(
    readonly input: SharedArrayBuffer,
    readonly output: SharedArrayBuffer,
  ) {}

  get count(): number {
    return this.chunkIds.length;
  }

  fits(c: ChunkLocation): boolean {
    return (
      this.count < BATCH_CHUNKS && this.inAt + c.length <= this.input.byteLength && this.outAt + c.plaintextLength <= this.output.byteLength
    );
  }

  /** Copies the blob of `c` in from its pack. */
  async add(c: ChunkLocation, cursor: PackCursor): Promise<void> {
    await cursor.copy(c.offset, Buffer.from(this.input, this.inAt, c.length));
    let index = this.packIndex.get(c.pack);
    if (index === undefined) {
      index = this.packs.push(c.pack) - 1;
      this.blobKeys.push(cursor.blobKey!);
      this.packIndex.set(c.pack, index);
    }
    this.layout.push(index, this.inAt, c.length, this.outAt, c.plaintextLength);
    this.chunkIds.push(c.chunkId);
    this.inAt += c.length;
    this.outAt += c.plaintextLength;
  }

  /** Where chunk `i`'s plaintext ends in the output. */
  endOf(i: number): number {
    return i === 0 ? 0 : this.layout[(i - 1) * LAYOUT_FIELDS + 3]! + this.layout[(i - 1) * LAYOUT_FIELDS + 4]!;
  }

  build(chunkIdKey: Buffer): BlobBatch {
    return {
      id: 0,
      chunkIdKey: new Uint8Array(chunkIdKey),
      packs: this.packs,
      blobKeys: new Uint8Array(Buffer.concat(this.blobKeys, this.packs.length * BLOB_KEY_BYTES)),
      input: this.input,
      output: this.output,
      layout: Uint32Array.from(this.layout),
      chunkIds: new Uint8Array(Buffer.concat(this.chunkIds, this.count * CHUNK_ID_BYTES)),
    };
  }
}

/** A batch handed to be opened, and what came of it. */
interface Dispatched {
  builder: BatchBuilder;
  result: Promise<BatchResult>;
}

/** The packs a role is read from, at most OPEN_PACKS open at once, each read forward. */
class OpenPacks {
  private readonly open = new Map<string, PackCursor>();

  constructor(
    private readonly target: Target,
    private readonly layout: RepositoryLayout,
    private readonly keys: RepositoryKeys,
  ) {}

  /** A cursor on `pack` that can still read at `offset`: the open one, or a new one from the start. */
  async cursorFor(pack: string, offset: number): Promise<PackCursor> {
    const known = this.open.get(pack);
    if (known?.reaches(offset)) {
      this.open.delete(pack);
      this.open.set(pack, known); // most recently used last
      return known;
    }
    known?.close();
    this.open.delete(pack);
    if (this.open.size >= OPEN_PACKS) {
      const [oldest] = this.open.keys();
      this.open.get(oldest!)!.close();
      this.open.delete(oldest!);
    }
    const cursor = await PackCursor.open(this.target, this.layout, this.keys, pack);
    this.open.set(pack, cursor);
    return cursor;
  }

  closeAll(): void {
    for (const cursor of this.open.values()) cursor.close();
  }
}

/**
 * Starts the threads that open chunks, ahead of the first chunk: a worker thread takes ~0.1 s to
 * boot, which would otherwise come after the backup, the repository and its index were read.
 */
export function startChunkOpeners(): void {
  ChunkWorkers.shared();
}

/** Batches opened (on the worker pool where there is one), their memory taken from and given back to slabs. */
class BatchOpener {
  private readonly workers = ChunkWorkers.shared();
  private readonly inputs = new Slabs();
  private readonly outputs = new Slabs();
  private readonly handedOut = new WeakSet<Buffer>();

  constructor(private readonly keys: RepositoryKeys) {}

  /** An empty batch that `c` fits in. */
  builderFor(c: ChunkLocation): BatchBuilder {
    // The catalog is authenticated, so this is never so; but no memory is set aside on its word alone.
    if (c.plaintextLength > MAX_CHUNK_BYTES)
      throw chunkNotAuthentic(
        c.chunkId.toString('hex'),
        c.pack,
        `the catalog gives it ${c.plaintextLength} bytes, more than a chunk holds`,
      );
    return new BatchBuilder(this.inputs.take(c.length), this.outputs.take(c.plaintextLength));
  }

  dispatch(builder: BatchBuilder): Dispatched {
    const result = Promise.resolve(openBlobBatch(this.workers, builder.build(this.keys.chunkId)));
    // Once opened, nothing reads the blobs any more.
    const settled = result.then((r) => {
      this.inputs.giveBack(builder.input);
      return r;
    });
    return { builder, result: settled };
  }

  /** The chunks of a batch that opened, as one piece; then, if one did not, its error. */
  async *outcome({ builder, result }: Dispatched): AsyncGenerator<Buffer> {
    const { opened, failure } = await result;
    const end = builder.endOf(opened);
    if (end > 0) {
      const piece = Buffer.from(builder.output, 0, end);
      this.handedOut.add(piece);
      yield piece;
    } else if (failure === undefined) this.outputs.giveBack(builder.output);
    if (failure !== undefined) throw failure;
  }

  /** A piece outcome() gave, handed back by its reader: its memory may take another batch. */
  recycle(piece: Buffer): void {
    if (this.handedOut.delete(piece)) this.outputs.giveBack(piece.buffer as SharedArrayBuffer);
  }
}

/**
 * The role stream a catalog describes, in order; every chunk is authenticated as its id (under
 * its pack's key, then by its keyed hash) before any of its bytes is passed on, so nothing a
 * provider receives is other than what was backed up. Chunks are opened in batches, on a worker
 * thread where there is one, while the next batches' blobs are read; each batch's chunks come out
 * as one piece, which the reader may hand back (recycle) once done with it.
 */
export function readCatalog(target: Target, layout: RepositoryLayout, keys: RepositoryKeys, catalog: Catalog): RecyclingReadable {
  const packs = new OpenPacks(target, layout, keys);
  const opener = new BatchOpener(keys);
  async function* chunks(): AsyncGenerator<Buffer> {
    const inFlight: Dispatched[] = [];
    let builder: BatchBuilder | undefined;
    let stopped: unknown;
    try {
      for (const c of catalog.chunks) {
        if (builder && !builder.fits(c)) {
          inFlight.push(opener.dispatch(builder));
          builder = undefined;
          // A batch that fails ends the stream here: nothing after its failing chunk is passed on.
          while (inFlight.length >= BATCHES_AHEAD) yield* opener.outcome(inFlight.shift()!);
        }
        try {
          const cursor = await packs.cursorFor(c.pack, c.offset);
          builder ??= opener.builderFor(c);
          await builder.add(c, cursor);
        } catch (e) {
          // A pack that cannot be read: the chunks before it are still opened and passed on (or fail first), in order.
          stopped = e;
          break;
        }
      }
      if (builder && builder.count > 0) inFlight.push(opener.dispatch(builder));
      while (inFlight.length) yield* opener.outcome(inFlight.shift()!);
      if (stopped !== undefined) throw stopped;
    } finally {
      packs.closeAll();
    }
  }
  const stream = Readable.from(chunks(), { objectMode: false, highWaterMark: BATCH_BYTES });
  return Object.assign(stream, { recycle: (piece: Buffer): void => opener.recycle(piece) });
}
