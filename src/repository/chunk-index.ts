import { ChunkIdSet } from './id-set.js';
import type { ChunkRefs } from './chunk-refs.js';
import { checkedLocations, LOCATION_ENTRY_BYTES, type LocationTable } from './locations.js';
import type { ChunkLocation } from './pack-reader.js';

const META_WORDS = 4; // pack ordinal, offset, length, plaintext length
const INITIAL_CAPACITY = 1024;

/**
 * Chunk id → where it lies, in memory, compact: the ids in a ChunkIdSet (32 bytes each and a
 * table of 4-byte slots at most half full), the location in a Uint32Array (16 bytes each), by the
 * id's number in the set. About 56-64 bytes an entry when full, up to twice that just after it
 * grows (see bytesAllocated): 50,000 chunks (a 5 GiB corpus) take about 3 MB, a million chunks
 * (1 TiB) about 64 MB. Packs are numbered; their names are kept once each.
 */
export class ChunkIndex {
  private readonly ids = new ChunkIdSet();
  private meta = new Uint32Array(INITIAL_CAPACITY * META_WORDS);
  private readonly packs: string[] = [];
  private readonly packOrdinals = new Map<string, number>();

  get size(): number {
    return this.ids.size;
  }

  /** Bytes held by the entries' arrays (not the pack names): what grows with the number of chunks. */
  get bytesAllocated(): number {
    return this.ids.bytesAllocated + this.meta.byteLength;
  }

  /** Every pack some entry lies in, by ordinal. */
  get packNames(): readonly string[] {
    return this.packs;
  }

  has(id: Buffer): boolean {
    return this.ids.has(id);
  }

  /** The plaintext length the index holds for `id`, or -1 when it holds none. */
  plaintextLengthOf(id: Buffer): number {
    const n = this.ids.indexOf(id);
    return n < 0 ? -1 : this.meta[n * META_WORDS + 3]!;
  }

  get(id: Buffer): ChunkLocation | undefined {
    const n = this.ids.indexOf(id);
    return n < 0 ? undefined : this.entry(n);
  }

  /** Adds a location; a chunk already known keeps its first location and false is returned. */
  add(loc: ChunkLocation): boolean {
    return this.addLocation(loc.chunkId, loc.pack, loc.offset, loc.length, loc.plaintextLength);
  }

  /** add() without a ChunkLocation: `id` is copied. */
  /**
   * Adds the locations encoded in `body` (locations.ts) as add() would one by one, without an
   * object per entry, once the whole body is checked; `damaged(detail)` makes the error. With
   * `usable`, entries in packs it refuses are left out, so that a location in another index file
   * is taken for their chunks, or none.
   */
  addEncoded(body: Buffer, damaged: (detail: string) => Error, usable?: (pack: string) => boolean): void {
    // Every index load reads all index files: each entry is taken straight from the bytes, with
    // no object or view per entry, and its pack by its number in the body's table. A pack gets its
    // ordinal with its first new entry, so packNames lists only packs some entry lies in.
    const { packs, count, first } = checkedLocations(body, damaged);
    const ordinals = new Int32Array(packs.length).fill(-1);
    const refused = packs.map((p) => usable !== undefined && !usable(p));
    this.ids.reserve(this.ids.size + count);
    for (let i = 0, at = first; i < count; i++, at += LOCATION_ENTRY_BYTES) {
      if (refused[body.readUInt32BE(at + 32)]) continue;
      const known = this.ids.size;
      const n = this.ids.addAt(body, at);
      // A chunk already known keeps its first location.
      if (n < known) continue;
      const k = body.readUInt32BE(at + 32);
      if (ordinals[k]! < 0) ordinals[k] = this.ordinalOf(packs[k]!);
      this.place(n, ordinals[k]!, body.readUInt32BE(at + 36), body.readUInt32BE(at + 40), body.readUInt32BE(at + 44));
    }
  }

  addLocation(id: Buffer, pack: string, offset: number, length: number, plaintextLength: number): boolean {
    const known = this.ids.size;
    const n = this.ids.add(id);
    if (n < known) return false;
    this.place(n, this.ordinalOf(pack), offset, length, plaintextLength);
    return true;
  }

  /** Records the location of the new id number `n`. */
  private place(n: number, ordinal: number, offset: number, length: number, plaintextLength: number): void {
    if ((n + 1) * META_WORDS > this.meta.length) {
      const meta = new Uint32Array(Math.max(this.meta.length * 2, (n + 1) * META_WORDS));
      meta.set(this.meta);
      this.meta = meta;
    }
    const m = n * META_WORDS;
    this.meta[m] = ordinal;
    this.meta[m + 1] = offset;
    this.meta[m + 2] = length;
    this.meta[m + 3] = plaintextLength;
  }

  /** Every entry, in the order they were added. */
  *entries(): Generator<ChunkLocation> {
    for (let n = 0; n < this.ids.size; n++) yield this.entry(n);
  }

  /**
   * Where each of `refs` lies, in their order, without an object per chunk (a role's catalog of
   * tens of thousands of chunks); throws when one is not in the index.
   */
  locationsOf(refs: ChunkRefs): LocationTable {
    const numbers = new Int32Array(refs.length);
    for (let i = 0; i < refs.length; i++) {
      const n = this.ids.indexOf(refs.idAt(i));
      if (n < 0) throw new Error(`chunk ${refs.idAt(i).toString('hex')} is not in the index`);
      numbers[i] = n;
    }
    const { ids, meta, packs } = this;
    return {
      length: numbers.length,
      packOf: (i) => packs[meta[numbers[i]! * META_WORDS]!]!,
      copyIdTo: (i, target, at) => ids.copyIdTo(numbers[i]!, target, at),
      offsetOf: (i) => meta[numbers[i]! * META_WORDS + 1]!,
      lengthOf: (i) => meta[numbers[i]! * META_WORDS + 2]!,
      plaintextLengthOf: (i) => meta[numbers[i]! * META_WORDS + 3]!,
    };
  }

  private entry(n: number): ChunkLocation {
    const m = n * META_WORDS;
    return {
      chunkId: Buffer.from(this.ids.idAt(n)),
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
}
