import { CHUNK_ID_BYTES } from './keys.js';
import { ENTRY_BYTES, locationsTable } from './locations.js';
import type { ChunkLocation } from './pack-reader.js';

const META_WORDS = 4; // pack ordinal, offset, length, plaintext length
const INITIAL_CAPACITY = 1024;

/**
 * Chunk id → where it lies, in memory, compact: ids in one byte array (32 bytes each), the
 * location in a Uint32Array (16 bytes each), and an open-addressing table of entry numbers
 * (4 bytes a slot, at most half full) keyed by the id's first 4 bytes, which are uniformly
 * random because ids are HMACs. About 56-64 bytes an entry when full, up to twice that just after
 * it grows (see bytesAllocated): 5,000 chunks (a 5 GiB corpus) take a few hundred KB, a million
 * chunks (1 TiB) about 64 MB. Packs are numbered; their names are kept once each.
 */
export class ChunkIndex {
  private ids = Buffer.alloc(INITIAL_CAPACITY * CHUNK_ID_BYTES);
  private meta = new Uint32Array(INITIAL_CAPACITY * META_WORDS);
  private slots = new Int32Array(INITIAL_CAPACITY * 2);
  private count = 0;
  private readonly packs: string[] = [];
  private readonly packOrdinals = new Map<string, number>();

  get size(): number {
    return this.count;
  }

  /** Bytes held by the entries' arrays (not the pack names): what grows with the number of chunks. */
  get bytesAllocated(): number {
    return this.ids.length + this.meta.byteLength + this.slots.byteLength;
  }

  /** Every pack some entry lies in, by ordinal. */
  get packNames(): readonly string[] {
    return this.packs;
  }

  has(id: Buffer): boolean {
    return this.find(id) >= 0;
  }

  get(id: Buffer): ChunkLocation | undefined {
    const n = this.find(id);
    return n < 0 ? undefined : this.entry(n);
  }

  /** Adds a location; a chunk already known keeps its first location and false is returned. */
  add(loc: ChunkLocation): boolean {
    if (loc.chunkId.length !== CHUNK_ID_BYTES) throw new RangeError('a chunk id is 32 bytes');
    if (this.find(loc.chunkId) >= 0) return false;
    if ((this.count + 1) * 2 > this.slots.length) this.grow();
    const n = this.count++;
    loc.chunkId.copy(this.ids, n * CHUNK_ID_BYTES);
    const m = n * META_WORDS;
    this.meta[m] = this.ordinalOf(loc.pack);
    this.meta[m + 1] = loc.offset;
    this.meta[m + 2] = loc.length;
    this.meta[m + 3] = loc.plaintextLength;
    this.place(n);
    return true;
  }

  /**
   * Adds every location encoded in `body` (locations.ts: an index file's body), as add() would one
   * by one, without making an object of each: loading the index was ~10 µs an entry in a fresh
   * process (a ChunkLocation and a copy of its id, then add()), and the index grows with the store.
   */
  addEncoded(body: Buffer, damaged: (detail: string) => Error): void {
    const { packs, entriesAt, count } = locationsTable(body, damaged);
    // The list's pack numbers to this index's, given as add() would: when a pack's first entry is kept.
    const ordinals = new Array<number>(packs.length).fill(-1);
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    for (let i = 0, at = entriesAt; i < count; i++, at += ENTRY_BYTES) {
      const pack = view.getUint32(at + CHUNK_ID_BYTES);
      if (pack >= packs.length) throw damaged(`entry ${i} names a pack it does not list`);
      if (this.find(body, at) >= 0) continue;
      let ordinal = ordinals[pack]!;
      if (ordinal < 0) ordinal = ordinals[pack] = this.ordinalOf(packs[pack]!);
      if ((this.count + 1) * 2 > this.slots.length) this.grow();
      const n = this.count++;
      this.ids.set(body.subarray(at, at + CHUNK_ID_BYTES), n * CHUNK_ID_BYTES);
      const m = n * META_WORDS;
      this.meta[m] = ordinal;
      this.meta[m + 1] = view.getUint32(at + CHUNK_ID_BYTES + 4);
      this.meta[m + 2] = view.getUint32(at + CHUNK_ID_BYTES + 8);
      this.meta[m + 3] = view.getUint32(at + CHUNK_ID_BYTES + 12);
      this.place(n);
    }
  }

  /** Every entry, in the order they were added. */
  *entries(): Generator<ChunkLocation> {
    for (let n = 0; n < this.count; n++) yield this.entry(n);
  }

  private entry(n: number): ChunkLocation {
    const m = n * META_WORDS;
    return {
      chunkId: Buffer.from(this.ids.subarray(n * CHUNK_ID_BYTES, (n + 1) * CHUNK_ID_BYTES)),
      pack: this.packs[this.meta[m]!]!,
      offset: this.meta[m + 1]!,
      length: this.meta[m + 2]!,
      plaintextLength: this.meta[m + 3]!,
    };
  }

  private ordinalOf(pack: string): number {
    let ordinal = this.packOrdinals.get(pack);
    if (ordinal === undefined) {
      ordinal = this.packs.length;
      this.packs.push(pack);
      this.packOrdinals.set(pack, ordinal);
    }
    return ordinal;
  }

  /** The entry number of the id at `at` in `id` (its 32 bytes), or -1. */
  private find(id: Buffer, at = 0): number {
    const mask = this.slots.length - 1;
    const word = id.readUInt32BE(at);
    for (let s = word & mask; ; s = (s + 1) & mask) {
      const v = this.slots[s]!;
      if (v === 0) return -1;
      const n = v - 1;
      // The first word tells most neighbours in the table apart without a compare() call.
      if (this.ids.readUInt32BE(n * CHUNK_ID_BYTES) !== word) continue;
      if (this.ids.compare(id, at, at + CHUNK_ID_BYTES, n * CHUNK_ID_BYTES, (n + 1) * CHUNK_ID_BYTES) === 0) return n;
    }
  }

  private place(n: number): void {
    const mask = this.slots.length - 1;
    let s = this.ids.readUInt32BE(n * CHUNK_ID_BYTES) & mask;
    while (this.slots[s] !== 0) s = (s + 1) & mask;
    this.slots[s] = n + 1;
  }

  private grow(): void {
    const capacity = (this.ids.length / CHUNK_ID_BYTES) * 2;
    const ids = Buffer.alloc(capacity * CHUNK_ID_BYTES);
    this.ids.copy(ids);
    this.ids = ids;
    const meta = new Uint32Array(capacity * META_WORDS);
    meta.set(this.meta);
    this.meta = meta;
    this.slots = new Int32Array(capacity * 2);
    for (let n = 0; n < this.count; n++) this.place(n);
  }
}
