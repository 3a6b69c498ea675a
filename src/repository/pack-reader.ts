import { createHash } from 'node:crypto';
import type { Target } from '../targets/target.js';
import { openBlob } from './blob.js';
import { packDamaged } from './errors.js';
import { packKeyOf, type RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import { ephemeralKeyOf, MAX_PACK_BYTES, MAX_PACK_TAIL_BYTES, PACK_HEADER_BYTES, parsePackTail, type PackEntry } from './pack-format.js';

/** Where a chunk lies: the pack (its SHA-256, hex) and the entry within it. */
export interface ChunkLocation extends PackEntry {
  pack: string;
}

export interface PackScan {
  size: number;
  /** The pack's table of contents, when keys were given. */
  entries?: PackEntry[];
}

export interface ScanOptions {
  /** With keys, the table of contents is authenticated and returned, and wanted chunks opened. */
  keys?: RepositoryKeys;
  /** Chunks to open on the way, in any order; each is authenticated as its id before it is yielded. */
  wanted?: readonly PackEntry[];
  /** The pack's size as the caller listed it: one over MAX_PACK_BYTES is refused before it is read. */
  listedSize?: number;
}

function tooLargeForAPack(hash: string, size: number | undefined): Error {
  const what = size === undefined ? 'it is' : `it is ${size} bytes,`;
  return packDamaged(
    hash,
    `${what} larger than any pack (${MAX_PACK_BYTES} bytes); it was not read${size === undefined ? ' further' : ''}`,
  );
}

/**
 * Streams one pack from the target once, in bounded memory (one blob and the pack's tail):
 * yields the wanted chunks' plaintexts as it passes them, and at the end checks that the bytes
 * hash to the pack's name (the keyless check), then, with keys, reads its table of contents.
 * A chunk is yielded only once it authenticated, so a damaged pack can yield some chunks before
 * it throws PackDamaged for the whole.
 */
export async function* scanPack(
  target: Target,
  layout: RepositoryLayout,
  hash: string,
  opts: ScanOptions = {},
): AsyncGenerator<{ entry: PackEntry; plaintext: Buffer }, PackScan> {
  const wanted = [...(opts.wanted ?? [])].sort((a, b) => a.offset - b.offset);
  if (wanted.length > 0 && !opts.keys?.privateKey) throw new TypeError('opening chunks needs the repository private key');
  const digest = createHash('sha256');
  const tail: Buffer[] = [];
  let tailBytes = 0;
  let header = Buffer.alloc(0);
  let pos = 0;
  let next = 0;
  let parts: Buffer[] = [];
  let blobKey: Buffer | undefined;
  // A file of any size may carry a pack's name: hashing it to its end would take as long as it is big.
  if (opts.listedSize !== undefined && opts.listedSize > MAX_PACK_BYTES) throw tooLargeForAPack(hash, opts.listedSize);
  // Pieces are kept (the tail, a blob's parts) and never handed back to a RecyclingReadable, so
  // the target never reads into them again: no copy is needed.
  for await (const chunk of await target.read(layout.packPath(hash))) {
    const piece = chunk as Buffer;
    // Unlisted (or grown since listed): stopped once past the largest pack (the stream is closed).
    if (pos + piece.length > MAX_PACK_BYTES) throw tooLargeForAPack(hash, undefined);
    digest.update(piece);
    if (header.length < PACK_HEADER_BYTES) header = Buffer.concat([header, piece.subarray(0, PACK_HEADER_BYTES - header.length)]);
    const end = pos + piece.length;
    while (next < wanted.length && wanted[next]!.offset < end) {
      const w = wanted[next]!;
      const from = Math.max(w.offset, pos);
      const to = Math.min(w.offset + w.length, end);
      if (from < to) parts.push(piece.subarray(from - pos, to - pos));
      if (to < w.offset + w.length) break;
      const blob = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      parts = [];
      next++;
      // Blobs start after the header, so it is whole by the time the first one is.
      blobKey ??= packKeyOf(opts.keys!, ephemeralKeyOf(hash, header));
      yield { entry: w, plaintext: openBlob(opts.keys!, { pack: hash, blobKey }, w.chunkId, blob, w.plaintextLength) };
    }
    tail.push(piece);
    tailBytes += piece.length;
    while (tail.length > 1 && tailBytes - tail[0]!.length >= MAX_PACK_TAIL_BYTES) tailBytes -= tail.shift()!.length;
    pos = end;
  }
  if (digest.digest('hex') !== hash) throw packDamaged(hash, 'its bytes do not hash to its name');
  if (next < wanted.length) throw packDamaged(hash, `it ends at byte ${pos}, before the chunk its index places at ${wanted[next]!.offset}`);
  if (!opts.keys) return { size: pos };
  const entries = parsePackTail(opts.keys.toc, hash, header, Buffer.concat(tail), pos);
  return { size: pos, entries };
}

/** Runs scanPack to its end and returns its result, discarding nothing it was not asked for. */
export async function readPackContents(target: Target, layout: RepositoryLayout, hash: string, keys?: RepositoryKeys): Promise<PackScan> {
  const scan = scanPack(target, layout, hash, { keys });
  for (;;) {
    const step = await scan.next();
    if (step.done) return step.value;
  }
}

/**
 * Opens the chunks at `locations`, streaming each pack they lie in once; every one is
 * authenticated as its id. Holds them all in memory: for checks and small reads. A restore
 * streams scanPack per pack instead and writes chunks as they come.
 */
export async function readChunks(
  target: Target,
  layout: RepositoryLayout,
  keys: RepositoryKeys,
  locations: readonly ChunkLocation[],
): Promise<Map<string, Buffer>> {
  const byPack = new Map<string, ChunkLocation[]>();
  for (const loc of locations) {
    const list = byPack.get(loc.pack);
    if (list) list.push(loc);
    else byPack.set(loc.pack, [loc]);
  }
  const out = new Map<string, Buffer>();
  for (const [pack, wanted] of byPack) {
    for await (const { entry, plaintext } of scanPack(target, layout, pack, { keys, wanted }))
      out.set(entry.chunkId.toString('hex'), plaintext);
  }
  return out;
}
