import { CHUNK_ID_BYTES } from './keys.js';

const INITIAL_CAPACITY = 64;

/**
 * A set of chunk ids (32 bytes each), compact and outside the JavaScript heap: the ids in one byte
 * array, numbered in the order they were added, and an open-addressing table of those numbers
 * (4 bytes a slot, at most half full) keyed by the id's first 4 bytes, which are uniformly random
 * because ids are HMACs. 40-48 bytes an id, up to twice that just after it grows; a Set of hex
 * strings took about 100 bytes an id on the heap, each string an object the collector walks.
 *
 * An id's number is stable while nothing is deleted; delete() moves the last id into the number
 * it frees.
 */
export class ChunkIdSet {
  private ids: Buffer = Buffer.allocUnsafeSlow(INITIAL_CAPACITY * CHUNK_ID_BYTES);
  /** Entry number + 1 per slot; 0 is an empty slot. Twice as many slots as ids fit. */
  private slots = new Int32Array(INITIAL_CAPACITY * 2);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Bytes held, whatever the number of ids. */
  get bytesAllocated(): number {
    return this.ids.length + this.slots.byteLength;
  }

  has(id: Buffer): boolean {
    return this.indexOf(id) >= 0;
  }

  /** The number of `id`, or -1 when it is not in the set. */
  indexOf(id: Buffer): number {
    const s = this.probe(id, 0);
    return s < 0 ? -1 : this.slots[s]! - 1;
  }

  /** Adds `id` (copied) unless it is there; its number, new or not. */
  add(id: Buffer): number {
    if (id.length !== CHUNK_ID_BYTES) throw new RangeError('a chunk id is 32 bytes');
    return this.addAt(id, 0);
  }

  /** add() of the id at source[at, at + 32), without a view of it (an index file's entries, read in place). */
  addAt(source: Buffer, at: number): number {
    if (at < 0 || at + CHUNK_ID_BYTES > source.length) throw new RangeError('a chunk id is 32 bytes');
    const s = this.probe(source, at);
    if (s >= 0) return this.slots[s]! - 1;
    if (this.count === this.ids.length / CHUNK_ID_BYTES) this.grow();
    const n = this.count++;
    source.copy(this.ids, n * CHUNK_ID_BYTES, at, at + CHUNK_ID_BYTES);
    this.place(n);
    return n;
  }

  /** Makes room for `total` ids at once (an index load knows how many come), so the set grows once, not by doubling. */
  reserve(total: number): void {
    if (total > this.ids.length / CHUNK_ID_BYTES) this.grow(2 ** Math.ceil(Math.log2(total)));
  }

  /** Removes `id`; false when it was not there. */
  delete(id: Buffer): boolean {
    const s = this.probe(id, 0);
    if (s < 0) return false;
    const n = this.slots[s]! - 1;
    this.vacate(s);
    const last = this.count - 1;
    if (n !== last) {
      // The last id takes the number freed, so numbers stay 0 … size-1.
      this.slots[this.probe(this.ids, last * CHUNK_ID_BYTES)] = n + 1;
      this.ids.copy(this.ids, n * CHUNK_ID_BYTES, last * CHUNK_ID_BYTES, (last + 1) * CHUNK_ID_BYTES);
    }
    this.count = last;
    return true;
  }

  /** Id number `n` (a view: valid until the set changes; copy it to keep it). */
  idAt(n: number): Buffer {
    if (n < 0 || n >= this.count) throw new RangeError(`no id number ${n}`);
    return this.ids.subarray(n * CHUNK_ID_BYTES, (n + 1) * CHUNK_ID_BYTES);
  }

  /** Copies id number `n` into `target` at `at`. */
  copyIdTo(n: number, target: Buffer, at: number): void {
    this.ids.copy(target, at, n * CHUNK_ID_BYTES, (n + 1) * CHUNK_ID_BYTES);
  }

  /** Whether id number `n` and `other`'s id number `m` are equal, and if not which sorts first (as Buffer.compare). */
  compareIds(n: number, other: ChunkIdSet, m: number): number {
    const a = this.ids.readUInt32BE(n * CHUNK_ID_BYTES);
    const b = other.ids.readUInt32BE(m * CHUNK_ID_BYTES);
    if (a !== b) return a < b ? -1 : 1;
    return this.ids.compare(other.ids, m * CHUNK_ID_BYTES, (m + 1) * CHUNK_ID_BYTES, n * CHUNK_ID_BYTES, (n + 1) * CHUNK_ID_BYTES);
  }

  /** Empties the set, keeping its memory. */
  clear(): void {
    this.count = 0;
    this.slots.fill(0);
  }

  /**
   * The slot holding the id at `source[at]`, or -1 when no slot does. Probing starts at the slot
   * the id's first 4 bytes name and stops at the first empty slot.
   */
  private probe(source: Buffer, at: number): number {
    const mask = this.slots.length - 1;
    for (let s = source.readUInt32BE(at) & mask; ; s = (s + 1) & mask) {
      const v = this.slots[s]!;
      if (v === 0) return -1;
      const n = v - 1;
      if (this.ids.compare(source, at, at + CHUNK_ID_BYTES, n * CHUNK_ID_BYTES, (n + 1) * CHUNK_ID_BYTES) === 0) return s;
    }
  }

  private place(n: number): void {
    const mask = this.slots.length - 1;
    let s = this.ids.readUInt32BE(n * CHUNK_ID_BYTES) & mask;
    while (this.slots[s] !== 0) s = (s + 1) & mask;
    this.slots[s] = n + 1;
  }

  /**
   * Empties slot `s`, moving back each later slot of the same run that may now be probed past its
   * place (linear probing's deletion without tombstones).
   */
  private vacate(s: number): void {
    const mask = this.slots.length - 1;
    let hole = s;
    for (let t = (s + 1) & mask; this.slots[t] !== 0; t = (t + 1) & mask) {
      const home = this.ids.readUInt32BE((this.slots[t]! - 1) * CHUNK_ID_BYTES) & mask;
      // Moved back into the hole unless its home lies cyclically in (hole, t].
      const stays = hole <= t ? hole < home && home <= t : hole < home || home <= t;
      if (stays) continue;
      this.slots[hole] = this.slots[t]!;
      hole = t;
    }
    this.slots[hole] = 0;
  }

  private grow(capacity = (this.ids.length / CHUNK_ID_BYTES) * 2): void {
    const ids = Buffer.allocUnsafeSlow(capacity * CHUNK_ID_BYTES);
    this.ids.copy(ids, 0, 0, this.count * CHUNK_ID_BYTES);
    this.ids = ids;
    this.slots = new Int32Array(capacity * 2);
    for (let n = 0; n < this.count; n++) this.place(n);
  }
}
