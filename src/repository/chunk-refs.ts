import { CHUNK_ID_BYTES } from './keys.js';

/** One chunk of a stream: its id and its plaintext length. */
export interface ChunkRef {
  id: Buffer;
  length: number;
}

/**
 * Chunks in order, read without an object per chunk: a stream's (ChunkRefList), a part of one, or
 * a file's as the files cache recorded them.
 */
export interface ChunkRefs {
  readonly length: number;
  /** Chunk i's id: a view, valid until the list changes; copy it to keep it. */
  idAt(i: number): Buffer;
  /** Chunk i's plaintext length. */
  lengthAt(i: number): number;
  /** Copies chunk i's id into `target` at `at`. */
  copyIdTo(i: number, target: Buffer, at: number): void;
}

const INITIAL_CAPACITY = 64;

/**
 * A stream's chunks in order, compact: the ids in one growing byte array (32 bytes each) and the
 * lengths in a Uint32Array, 36 bytes a chunk, where an object with a Buffer of its own took about
 * 300 (and one allocation the collector tracks for each id). A backup of 5 GiB keeps about 50,000.
 */
export class ChunkRefList implements ChunkRefs {
  private ids: Buffer = Buffer.allocUnsafeSlow(INITIAL_CAPACITY * CHUNK_ID_BYTES);
  private lengths = new Uint32Array(INITIAL_CAPACITY);
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** Appends a chunk; `id` is copied. */
  push(id: Buffer, length: number): void {
    if (id.length !== CHUNK_ID_BYTES) throw new RangeError('a chunk id is 32 bytes');
    if (this.count === this.lengths.length) this.grow();
    id.copy(this.ids, this.count * CHUNK_ID_BYTES);
    this.lengths[this.count++] = length;
  }

  /** Sets chunk i's id (copied): a stream's chunk is appended before its id is known (chunk-store.ts). */
  setIdAt(i: number, id: Buffer): void {
    if (id.length !== CHUNK_ID_BYTES) throw new RangeError('a chunk id is 32 bytes');
    id.copy(this.ids, this.at(i) * CHUNK_ID_BYTES);
  }

  /** Appends every chunk of `refs`. */
  append(refs: ChunkRefs): void {
    for (let i = 0; i < refs.length; i++) {
      if (this.count === this.lengths.length) this.grow();
      refs.copyIdTo(i, this.ids, this.count * CHUNK_ID_BYTES);
      this.lengths[this.count++] = refs.lengthAt(i);
    }
  }

  idAt(i: number): Buffer {
    return this.ids.subarray(this.at(i) * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
  }

  lengthAt(i: number): number {
    return this.lengths[this.at(i)]!;
  }

  copyIdTo(i: number, target: Buffer, at: number): void {
    this.ids.copy(target, at, this.at(i) * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
  }

  /** Chunks `from` to `to` (excluded) as they are now: a view, valid while the list only grows. */
  slice(from: number, to: number = this.count): ChunkRefs {
    if (from < 0 || to > this.count || from > to) throw new RangeError(`no chunks ${from} to ${to} of ${this.count}`);
    const { ids, lengths } = this;
    return {
      length: to - from,
      idAt: (i) => ids.subarray((from + i) * CHUNK_ID_BYTES, (from + i + 1) * CHUNK_ID_BYTES),
      lengthAt: (i) => lengths[from + i]!,
      copyIdTo: (i, target, at) => {
        ids.copy(target, at, (from + i) * CHUNK_ID_BYTES, (from + i + 1) * CHUNK_ID_BYTES);
      },
    };
  }

  /** Each chunk as an object of its own (ids copied): for tests and tools, not for large streams. */
  *[Symbol.iterator](): Generator<ChunkRef> {
    for (let i = 0; i < this.count; i++) yield { id: Buffer.from(this.idAt(i)), length: this.lengthAt(i) };
  }

  private at(i: number): number {
    if (!(i >= 0 && i < this.count)) throw new RangeError(`no chunk ${i} of ${this.count}`);
    return i;
  }

  private grow(): void {
    const capacity = this.lengths.length * 2;
    const ids = Buffer.allocUnsafeSlow(capacity * CHUNK_ID_BYTES);
    this.ids.copy(ids, 0, 0, this.count * CHUNK_ID_BYTES);
    this.ids = ids;
    const lengths = new Uint32Array(capacity);
    lengths.set(this.lengths);
    this.lengths = lengths;
  }
}
