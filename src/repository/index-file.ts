import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Target } from '../targets/target.js';
import { ChunkIndex } from './chunk-index.js';
import { indexDamaged } from './errors.js';
import type { RepositoryKeys } from './keys.js';
import { decodeLocations, encodeLocations } from './locations.js';
import type { RepositoryLayout } from './layout.js';
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

export function encodeIndexFile(keys: RepositoryKeys, locations: readonly ChunkLocation[]): Buffer {
  const body = encodeLocations([...locations].sort((a, b) => Buffer.compare(a.chunkId, b.chunkId)));
  const h = header();
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keys.index, nonce);
  cipher.setAAD(h);
  const sealed = Buffer.concat([cipher.update(body), cipher.final()]);
  return Buffer.concat([h, nonce, sealed, cipher.getAuthTag()]);
}

export function decodeIndexFile(keys: RepositoryKeys, name: string, file: Buffer): ChunkLocation[] {
  return decodeLocations(openIndexFile(keys, name, file), (detail) => indexDamaged(name, detail));
}

/** An index file's body (locations), authenticated and decrypted. */
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
async function writeIndexFile(
  target: Target,
  layout: RepositoryLayout,
  keys: RepositoryKeys,
  locations: readonly ChunkLocation[],
): Promise<string> {
  const file = encodeIndexFile(keys, locations);
  const hash = createHash('sha256').update(file).digest('hex');
  await target.write(layout.indexPath(hash), Readable.from([file]));
  return hash;
}

/** The union of every index file on the target, in one in-memory index. */
export async function loadIndex(target: Target, layout: RepositoryLayout, keys: RepositoryKeys): Promise<ChunkIndex> {
  const index = new ChunkIndex();
  const names = (await target.list(layout.indexFolder)).filter((e) => !e.isDirectory && layout.indexHashOf(e.name)).map((e) => e.name);
  const files = await target.readSmallFiles(names.map((n) => `${layout.indexFolder}/${n}`));
  names.forEach((name, i) => {
    const file = files[i];
    if (!file) return; // removed since listed (a concurrent prune): its packs are gone or indexed again
    if (!Buffer.isBuffer(file)) throw file; // too large or not a file: refused unread, as every small read is
    if (createHash('sha256').update(file).digest('hex') !== layout.indexHashOf(name))
      throw indexDamaged(name, 'its bytes do not hash to its name');
    index.addEncoded(openIndexFile(keys, name, file), (detail) => indexDamaged(name, detail));
  });
  return index;
}

/**
 * Bytes of an index file's body kept well under what a reader takes whole (2 MiB, as every small
 * file: loadIndex): about 36,000 chunks, 36 GiB of distinct data, a file.
 */
const INDEX_BODY_LIMIT = 1_750_000;

/** Writes `entries` as few index files as the size bound allows (the only way index files are
 * written: one file per backup would pass what a reader takes once a backup adds ~36,000 chunks,
 * and every later backup would then fail to load the index); returns their hashes. */
export async function writeIndexFiles(
  target: Target,
  layout: RepositoryLayout,
  keys: RepositoryKeys,
  entries: readonly ChunkLocation[],
): Promise<string[]> {
  const byPack = [...entries].sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : 0));
  const written: string[] = [];
  let part: ChunkLocation[] = [];
  let packs = new Set<string>();
  const flush = async () => {
    if (part.length) written.push(await writeIndexFile(target, layout, keys, part));
    part = [];
    packs = new Set();
  };
  for (const l of byPack) {
    const grown = 8 + (part.length + 1) * 48 + (packs.size + (packs.has(l.pack) ? 0 : 1)) * 32;
    if (grown > INDEX_BODY_LIMIT) await flush();
    part.push(l);
    packs.add(l.pack);
  }
  await flush();
  return written;
}
