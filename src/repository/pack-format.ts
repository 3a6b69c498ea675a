import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CHUNK_ID_BYTES } from './keys.js';
import { packDamaged } from './errors.js';
import { BLOB_OVERHEAD, MAX_CHUNK_BYTES } from './blob.js';

/**
 * A pack file (all integers big-endian):
 *
 *   pack    = header || blob[0] || … || blob[n-1] || toc || trailer                1 ≤ n ≤ 16384
 *   header  = 48 bytes: "AZS-PACK" || version 0x02 || suite 0x02 || 6 zero bytes || E (32 bytes)
 *             suite 0x02: blobs sealed with AES-256-GCM under the pack key from X25519 and the
 *             ephemeral public key E (keys.ts)
 *   blob[i] = see blob.ts, at offset_i; offset_0 = 48, offset_{i+1} = offset_i + length_i,
 *             and the toc starts where blob[n-1] ends
 *   toc     = nonce (12 random) || AES-256-GCM(K_toc, nonce, aad = header || trailer, tocPlain) || tag (16)
 *   tocPlain = uint32 n || entry[0] || … || entry[n-1]
 *   entry   = chunkId (32) || uint32 offset || uint32 length (stored bytes) || uint32 plaintext length
 *   trailer = 12 bytes: uint32 toc length (bytes, nonce and tag included) || "AZS-PEND"
 *
 * The table of contents is what makes the index rebuildable from packs alone; it is encrypted so
 * the share does not learn the chunks' ids or lengths. A pack's name is the SHA-256 of all its bytes.
 */
export const PACK_MAGIC = Buffer.from('AZS-PACK', 'ascii');
export const PACK_END_MAGIC = Buffer.from('AZS-PEND', 'ascii');
export const PACK_HEADER_BYTES = 48;
const HEADER_FIXED_BYTES = 16;
export const PACK_TRAILER_BYTES = 12;
export const PACK_TOC_ENTRY_BYTES = CHUNK_ID_BYTES + 12;
export const MAX_PACK_ENTRIES = 16384;
const TOC_OVERHEAD = 12 + 16;
/** The most a pack's tail (toc and trailer) can take: what a reader keeps while it streams a pack. */
export const MAX_PACK_TAIL_BYTES = TOC_OVERHEAD + 4 + MAX_PACK_ENTRIES * PACK_TOC_ENTRY_BYTES + PACK_TRAILER_BYTES;
/**
 * The largest pack a writer makes: it closes a pack before a blob would take it past its pack size
 * (32 MiB, at most this less the tail: PackWriter), unless the blob is its first, and a blob is at
 * most a chunk (64 MiB, stored as is where zstd does not shrink it) and its overhead. A file over it
 * in a pack's place is refused from its size instead of being read (and hashed) to its end.
 */
export const MAX_PACK_BYTES = PACK_HEADER_BYTES + MAX_CHUNK_BYTES + BLOB_OVERHEAD + MAX_PACK_TAIL_BYTES;
const VERSION = 2;
const SUITE_X25519_AES256GCM = 2;

export interface PackEntry {
  chunkId: Buffer;
  offset: number;
  length: number;
  plaintextLength: number;
}

const INITIAL_ENTRIES = 64;

/**
 * A pack's entries as its writer keeps them until the pack is indexed: one growing byte array
 * laid out as the table of contents lays them out (44 bytes an entry), where an object and a
 * Buffer of its own per entry took about 300 bytes and an allocation the collector tracks.
 */
export class PackEntryList {
  private bytes: Buffer = Buffer.allocUnsafeSlow(INITIAL_ENTRIES * PACK_TOC_ENTRY_BYTES);
  private count = 0;

  /** The entries laid out in `bytes` as tocEntries() gives them (one buffer that crossed from a packer's thread), not copied. */
  static wrap(bytes: Buffer): PackEntryList {
    if (bytes.length % PACK_TOC_ENTRY_BYTES !== 0) throw new RangeError('pack entries are 44 bytes each');
    const list = new PackEntryList();
    list.bytes = bytes;
    list.count = bytes.length / PACK_TOC_ENTRY_BYTES;
    return list;
  }

  /** The entries of an array, copied. */
  static of(entries: readonly PackEntry[]): PackEntryList {
    const list = new PackEntryList();
    for (const e of entries) list.push(e.chunkId, e.offset, e.length, e.plaintextLength);
    return list;
  }

  get length(): number {
    return this.count;
  }

  push(chunkId: Buffer, offset: number, length: number, plaintextLength: number): void {
    if (chunkId.length !== CHUNK_ID_BYTES) throw new RangeError('a chunk id is 32 bytes');
    if ((this.count + 1) * PACK_TOC_ENTRY_BYTES > this.bytes.length) {
      const grown = Buffer.allocUnsafeSlow(this.bytes.length * 2);
      this.bytes.copy(grown, 0, 0, this.count * PACK_TOC_ENTRY_BYTES);
      this.bytes = grown;
    }
    const at = this.count * PACK_TOC_ENTRY_BYTES;
    chunkId.copy(this.bytes, at);
    this.bytes.writeUInt32BE(offset, at + 32);
    this.bytes.writeUInt32BE(length, at + 36);
    this.bytes.writeUInt32BE(plaintextLength, at + 40);
    this.count++;
  }

  /** Entry i's chunk id: a view, valid until the list changes; copy it to keep it. */
  chunkIdAt(i: number): Buffer {
    const at = this.at(i);
    return this.bytes.subarray(at, at + CHUNK_ID_BYTES);
  }

  copyIdTo(i: number, target: Buffer, to: number): void {
    const at = this.at(i);
    this.bytes.copy(target, to, at, at + CHUNK_ID_BYTES);
  }

  offsetAt(i: number): number {
    return this.bytes.readUInt32BE(this.at(i) + 32);
  }

  lengthAt(i: number): number {
    return this.bytes.readUInt32BE(this.at(i) + 36);
  }

  plaintextLengthAt(i: number): number {
    return this.bytes.readUInt32BE(this.at(i) + 40);
  }

  /** The first 4 bytes of entry i's chunk id, big-endian: what sorts ids but for ties. */
  idPrefixAt(i: number): number {
    return this.bytes.readUInt32BE(this.at(i));
  }

  /** Buffer.compare of entry i's chunk id and `other`'s entry j's. */
  compareIds(i: number, other: PackEntryList, j: number): number {
    const a = this.at(i);
    const b = other.at(j);
    return this.bytes.compare(other.bytes, b, b + CHUNK_ID_BYTES, a, a + CHUNK_ID_BYTES);
  }

  /** Entry i as an object of its own (id copied). */
  get(i: number): PackEntry {
    return {
      chunkId: Buffer.from(this.chunkIdAt(i)),
      offset: this.offsetAt(i),
      length: this.lengthAt(i),
      plaintextLength: this.plaintextLengthAt(i),
    };
  }

  *[Symbol.iterator](): Generator<PackEntry> {
    for (let i = 0; i < this.count; i++) yield this.get(i);
  }

  /** The entries as the table of contents lists them (tocPlain without its count). */
  tocEntries(): Buffer {
    return this.bytes.subarray(0, this.count * PACK_TOC_ENTRY_BYTES);
  }

  private at(i: number): number {
    if (!(i >= 0 && i < this.count)) throw new RangeError(`no entry ${i} of ${this.count}`);
    return i * PACK_TOC_ENTRY_BYTES;
  }
}

export function packHeader(ephemeral: Buffer): Buffer {
  const header = Buffer.alloc(PACK_HEADER_BYTES);
  PACK_MAGIC.copy(header, 0);
  header[8] = VERSION;
  header[9] = SUITE_X25519_AES256GCM;
  ephemeral.copy(header, HEADER_FIXED_BYTES);
  return header;
}

/** The ephemeral public key of a pack's header, once the header is checked. */
export function ephemeralKeyOf(pack: string, header: Buffer): Buffer {
  if (header.length < PACK_HEADER_BYTES || !header.subarray(0, 8).equals(PACK_MAGIC))
    throw packDamaged(pack, 'it does not start with AZS-PACK');
  if (header[8] !== VERSION || header[9] !== SUITE_X25519_AES256GCM)
    throw packDamaged(pack, `version ${header[8]}, suite ${header[9]} is not one this version reads`);
  return Buffer.from(header.subarray(HEADER_FIXED_BYTES, PACK_HEADER_BYTES));
}

function trailerFor(tocLength: number): Buffer {
  const trailer = Buffer.alloc(PACK_TRAILER_BYTES);
  trailer.writeUInt32BE(tocLength, 0);
  PACK_END_MAGIC.copy(trailer, 4);
  return trailer;
}

/** The toc and trailer that end a pack holding `entries` (in offset order). */
export function packTail(tocKey: Buffer, header: Buffer, entries: PackEntryList | readonly PackEntry[]): Buffer {
  const list = entries instanceof PackEntryList ? entries : PackEntryList.of(entries);
  const plain = Buffer.alloc(4 + list.length * PACK_TOC_ENTRY_BYTES);
  plain.writeUInt32BE(list.length, 0);
  list.tocEntries().copy(plain, 4);
  const trailer = trailerFor(plain.length + TOC_OVERHEAD);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', tocKey, nonce);
  cipher.setAAD(Buffer.concat([header, trailer]));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag(), trailer]);
}

/**
 * The entries of a pack of `size` bytes from its first 16 bytes and its last bytes (`tail`, at
 * least the toc and trailer). Checks the header, the toc's authenticity and that the entries tile
 * the pack from the header to the toc with nothing between them.
 */
export function parsePackTail(tocKey: Buffer, pack: string, header: Buffer, tail: Buffer, size: number): PackEntry[] {
  ephemeralKeyOf(pack, header);
  if (tail.length < PACK_TRAILER_BYTES || !tail.subarray(tail.length - 8).equals(PACK_END_MAGIC))
    throw packDamaged(pack, 'it does not end with AZS-PEND');
  const trailer = tail.subarray(tail.length - PACK_TRAILER_BYTES);
  const tocLength = trailer.readUInt32BE(0);
  const tocStart = size - PACK_TRAILER_BYTES - tocLength;
  if (tocLength < TOC_OVERHEAD + 4 || tocLength + PACK_TRAILER_BYTES > tail.length || tocStart < PACK_HEADER_BYTES) {
    throw packDamaged(pack, 'its table of contents has an impossible length');
  }
  const toc = tail.subarray(tail.length - PACK_TRAILER_BYTES - tocLength, tail.length - PACK_TRAILER_BYTES);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', tocKey, toc.subarray(0, 12));
    decipher.setAAD(Buffer.concat([header.subarray(0, PACK_HEADER_BYTES), trailer]));
    decipher.setAuthTag(toc.subarray(toc.length - 16));
    plain = Buffer.concat([decipher.update(toc.subarray(12, toc.length - 16)), decipher.final()]);
  } catch (cause) {
    throw packDamaged(pack, 'its table of contents does not authenticate (changed, or not made with this repository key)', cause);
  }
  const count = plain.readUInt32BE(0);
  if (count < 1 || count > MAX_PACK_ENTRIES || plain.length !== 4 + count * PACK_TOC_ENTRY_BYTES)
    throw packDamaged(pack, 'its table of contents is malformed');
  const entries: PackEntry[] = [];
  let expected = PACK_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const at = 4 + i * PACK_TOC_ENTRY_BYTES;
    const entry: PackEntry = {
      chunkId: Buffer.from(plain.subarray(at, at + 32)),
      offset: plain.readUInt32BE(at + 32),
      length: plain.readUInt32BE(at + 36),
      plaintextLength: plain.readUInt32BE(at + 40),
    };
    if (entry.offset !== expected || entry.length < BLOB_OVERHEAD)
      throw packDamaged(pack, `entry ${i} of its table of contents does not follow the one before it`);
    expected += entry.length;
    entries.push(entry);
  }
  if (expected !== tocStart) throw packDamaged(pack, 'its blobs do not end where its table of contents starts');
  return entries;
}
