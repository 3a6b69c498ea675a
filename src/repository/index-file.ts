import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { AzsError } from '../errors.js';
import { tooLarge } from '../io/bounded-read.js';
import { shareFileLimit, SMALL_FILE_MAX_BYTES } from '../targets/share-errors.js';
import type { Target, TargetEntry } from '../targets/target.js';
import { ChunkIndex } from './chunk-index.js';
import { indexDamaged } from './errors.js';
import type { RepositoryKeys } from './keys.js';
import { decodeLocations, encodeLocations, type LocationTable } from './locations.js';
import type { RepositoryLayout } from './layout.js';
import { PackEntryList } from './pack-format.js';
import type { ChunkLocation } from './pack-reader.js';

/**
 * An index file (all integers big-endian), written once and never changed, named by its SHA-256:
 *
 *   file   = header || nonce (12 random) || AES-256-GCM(K_index, nonce, aad = header, body) || tag (16)
 *   header = 16 bytes: "AZS-INDX" || version 0x01 || suite 0x01 (AES-256-GCM) || 6 zero bytes
 *   body   = locations (locations.ts), entries sorted by chunk id
 *
 * It maps each chunk of some packs to where it lies; an entry is the pack's table-of-contents
 * entry (pack-format.ts) with the pack named. The union of all index files is the repository's
 * index; a chunk listed twice (two packs hold it) may be read from either.
 */
export const INDEX_MAGIC = Buffer.from('AZS-INDX', 'ascii');
const HEADER_BYTES = 16;

function header(): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  INDEX_MAGIC.copy(h, 0);
  h[8] = 1;
  h[9] = 1;
  return h;
}

export function encodeIndexFile(keys: RepositoryKeys, locations: readonly ChunkLocation[] | LocationTable): Buffer {
  const body = Array.isArray(locations)
    ? encodeLocations([...locations].sort((a, b) => Buffer.compare(a.chunkId, b.chunkId)))
    : encodeLocations(locations as LocationTable);
  const h = header();
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keys.index, nonce);
  cipher.setAAD(h);
  // One output buffer (a backup's index files are ~1.7 MB each): no concatenated copies.
  const out = Buffer.allocUnsafe(HEADER_BYTES + 12 + body.length + 16);
  h.copy(out, 0);
  nonce.copy(out, HEADER_BYTES);
  let at = HEADER_BYTES + 12;
  at += cipher.update(body).copy(out, at);
  at += cipher.final().copy(out, at);
  cipher.getAuthTag().copy(out, at);
  return out;
}

export function decodeIndexFile(keys: RepositoryKeys, name: string, file: Buffer): ChunkLocation[] {
  return decodeLocations(openIndexFile(keys, name, file), (detail) => indexDamaged(name, detail));
}

/** The body of an index file, authenticated. */
function openIndexFile(keys: RepositoryKeys, name: string, file: Buffer): Buffer {
  const h = header();
  if (file.length < HEADER_BYTES + 12 + 16 + 8 || !file.subarray(0, HEADER_BYTES).equals(h))
    throw indexDamaged(name, 'it is not an AZS-INDX version 1 file');
  let body: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keys.index, file.subarray(HEADER_BYTES, HEADER_BYTES + 12));
    decipher.setAAD(h);
    decipher.setAuthTag(file.subarray(file.length - 16));
    body = Buffer.concat([decipher.update(file.subarray(HEADER_BYTES + 12, file.length - 16)), decipher.final()]);
  } catch (cause) {
    throw indexDamaged(name, 'it does not authenticate (changed, or not made with this repository key)', cause);
  }
  return body;
}

/** Writes one index file (whole, under a temporary name, then its final one); returns its hash. */
async function writeIndexFile(target: Target, layout: RepositoryLayout, keys: RepositoryKeys, locations: LocationTable): Promise<string> {
  const file = encodeIndexFile(keys, locations);
  const hash = createHash('sha256').update(file).digest('hex');
  await target.write(layout.indexPath(hash), Readable.from([file]));
  return hash;
}

/**
 * The union of every index file on the target, in one in-memory index. With `present` (the packs
 * on the share), entries in packs that are not there are left out, and those packs are passed to
 * `missing`: a backup then stores their chunks anew instead of naming a pack that is gone.
 */
export async function loadIndex(
  target: Target,
  layout: RepositoryLayout,
  keys: RepositoryKeys,
  present?: ReadonlySet<string>,
  missing?: (packs: string[]) => void,
): Promise<ChunkIndex> {
  const index = new ChunkIndex();
  const gone = new Set<string>();
  const usable =
    present &&
    ((pack: string): boolean => {
      if (present.has(pack)) return true;
      gone.add(pack);
      return false;
    });
  const listed = (await target.list(layout.indexFolder)).filter((e) => !e.isDirectory && layout.indexHashOf(e.name));
  const names = listed.map((e) => e.name);
  const files = await readListedIndexFiles(target, layout, listed);
  names.forEach((name, i) => {
    const file = files[i];
    if (!file) return; // removed since listed (a concurrent prune): its packs are gone or indexed again
    if (!Buffer.isBuffer(file)) throw file; // too large or not a file: refused unread, as every small read is
    if (createHash('sha256').update(file).digest('hex') !== layout.indexHashOf(name))
      throw indexDamaged(name, 'its bytes do not hash to its name');
    index.addEncoded(openIndexFile(keys, name, file), (detail) => indexDamaged(name, detail), usable);
  });
  if (gone.size) missing?.([...gone].sort());
  return index;
}

/**
 * The index files `listed`, read whole as readSmallFiles reads them; one listed over the limit is
 * refused (FileTooLarge) unfetched: smbclient brings a file whole onto the local disk before it
 * can be refused, and a file of any size may carry an index file's name.
 */
export async function readListedIndexFiles(
  target: Target,
  layout: RepositoryLayout,
  listed: readonly TargetEntry[],
): Promise<(Buffer | AzsError | undefined)[]> {
  const path = (e: TargetEntry) => `${layout.indexFolder}/${e.name}`;
  const small = listed.filter((e) => e.size <= SMALL_FILE_MAX_BYTES);
  const read = await target.readSmallFiles(small.map(path));
  let next = 0;
  return listed.map((e) =>
    e.size <= SMALL_FILE_MAX_BYTES ? read[next++] : tooLarge(path(e), shareFileLimit(target.location, SMALL_FILE_MAX_BYTES), e.size),
  );
}

/**
 * Bytes of an index file's body kept well under what a reader takes whole (2 MiB, as every small
 * file: loadIndex): about 36,000 chunks, 36 GiB of distinct data, a file.
 */
const INDEX_BODY_LIMIT = 1_750_000;

/** Packs and what each holds: what a backup's commit indexes. */
export interface IndexedPack {
  hash: string;
  entries: PackEntryList;
}

/**
 * Writes the entries of `packs` (or `entries`, grouped by pack) as few index files as the size
 * bound allows (the only way index files are written: one file per backup would pass what a
 * reader takes once a backup adds ~36,000 chunks, and every later backup would then fail to load
 * the index); returns their hashes. Entries go in the order of their packs' names (each pack's in
 * the order given), cut into files by size; a file lists its entries sorted by chunk id.
 */
export async function writeIndexFiles(
  target: Target,
  layout: RepositoryLayout,
  keys: RepositoryKeys,
  entries: readonly ChunkLocation[] | readonly IndexedPack[],
): Promise<string[]> {
  const packs = [...(isLocations(entries) ? groupByPack(entries) : entries)].sort((a, b) =>
    a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0,
  );
  const written: string[] = [];
  // The next file's entries: ranges of entries of consecutive packs.
  let part: { pack: IndexedPack; from: number; to: number }[] = [];
  let count = 0;
  const flush = async () => {
    if (count) written.push(await writeIndexFile(target, layout, keys, sortedById(part, count)));
    part = [];
    count = 0;
  };
  for (const pack of packs) {
    for (let i = 0; i < pack.entries.length; i++) {
      const open = part.at(-1)?.pack === pack;
      const grown = 8 + (count + 1) * 48 + (part.length + (open ? 0 : 1)) * 32;
      if (grown > INDEX_BODY_LIMIT) await flush();
      const last = part.at(-1);
      if (last?.pack === pack) last.to = i + 1;
      else part.push({ pack, from: i, to: i + 1 });
      count++;
    }
  }
  await flush();
  return written;
}

function isLocations(entries: readonly ChunkLocation[] | readonly IndexedPack[]): entries is readonly ChunkLocation[] {
  return entries.length > 0 && 'chunkId' in entries[0]!;
}

/** Locations grouped by pack, each pack's in the order given. */
function groupByPack(locations: readonly ChunkLocation[]): IndexedPack[] {
  const byPack = new Map<string, PackEntryList>();
  for (const l of locations) {
    let list = byPack.get(l.pack);
    if (!list) byPack.set(l.pack, (list = new PackEntryList()));
    list.push(l.chunkId, l.offset, l.length, l.plaintextLength);
  }
  return [...byPack].map(([hash, entries]) => ({ hash, entries }));
}

/** The `count` entries of `part` as a table sorted by chunk id (as an index file lists them). */
function sortedById(part: readonly { pack: IndexedPack; from: number; to: number }[], count: number): LocationTable {
  const packOf = new Uint32Array(count);
  const entryOf = new Uint32Array(count);
  let k = 0;
  part.forEach(({ from, to }, p) => {
    for (let i = from; i < to; i++, k++) {
      packOf[k] = p;
      entryOf[k] = i;
    }
  });
  const list = (k: number) => part[packOf[k]!]!.pack.entries;
  const order = new Uint32Array(count).map((_, k) => k);
  order.sort((a, b) => {
    const x = list(a).idPrefixAt(entryOf[a]!);
    const y = list(b).idPrefixAt(entryOf[b]!);
    // Ties (a chunk two packs hold) keep the order given.
    return x !== y ? x - y : list(a).compareIds(entryOf[a]!, list(b), entryOf[b]!) || a - b;
  });
  return {
    length: count,
    packOf: (i) => part[packOf[order[i]!]!]!.pack.hash,
    copyIdTo: (i, target, at) => list(order[i]!).copyIdTo(entryOf[order[i]!]!, target, at),
    offsetOf: (i) => list(order[i]!).offsetAt(entryOf[order[i]!]!),
    lengthOf: (i) => list(order[i]!).lengthAt(entryOf[order[i]!]!),
    plaintextLengthOf: (i) => list(order[i]!).plaintextLengthAt(entryOf[order[i]!]!),
  };
}
