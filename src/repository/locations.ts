import { CHUNK_ID_BYTES } from './keys.js';
import type { ChunkLocation } from './pack-reader.js';

/**
 * A list of chunk locations as index files and catalogs store them (integers big-endian):
 *
 *   locations = uint32 p || packHash[0] (32 bytes) || … || packHash[p-1]
 *               || uint32 n || entry[0] || … || entry[n-1]
 *   entry     = chunkId (32) || uint32 pack (0 … p-1) || uint32 offset || uint32 length || uint32 plaintext length
 *
 * Entries keep the order they are given in: an index sorts them by id, a catalog keeps the stream's order.
 */
export const ENTRY_BYTES = CHUNK_ID_BYTES + 16;

export function encodeLocations(locations: readonly ChunkLocation[]): Buffer {
  const packs = [...new Set(locations.map((l) => l.pack))].sort();
  const ordinal = new Map(packs.map((p, i) => [p, i]));
  const out = Buffer.alloc(4 + packs.length * 32 + 4 + locations.length * ENTRY_BYTES);
  // Uint8Array's set() and a DataView: Buffer's copy() and writeUInt32BE() check their arguments in
  // JavaScript, which a catalog of every chunk of a role pays per chunk, mostly before the JIT warms up.
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(0, packs.length);
  let at = 4;
  for (const p of packs) at += out.write(p, at, 32, 'hex');
  view.setUint32(at, locations.length);
  at += 4;
  for (const l of locations) {
    // What writeUInt32BE() refused, a DataView would wrap.
    if (l.chunkId.length !== CHUNK_ID_BYTES || !uint32(l.offset) || !uint32(l.length) || !uint32(l.plaintextLength)) {
      throw new RangeError(
        `a location that does not fit its entry: ${l.chunkId.toString('hex')} at ${l.offset} (${l.length}, ${l.plaintextLength})`,
      );
    }
    out.set(l.chunkId, at);
    view.setUint32(at + 32, ordinal.get(l.pack)!);
    view.setUint32(at + 36, l.offset);
    view.setUint32(at + 40, l.length);
    view.setUint32(at + 44, l.plaintextLength);
    at += ENTRY_BYTES;
  }
  return out;
}

const uint32 = (n: number): boolean => n >>> 0 === n;

/** The locations encoded in `body`, which they must fill exactly; `damaged(detail)` makes the error. */
export function decodeLocations(body: Buffer, damaged: (detail: string) => Error): ChunkLocation[] {
  const { packs, entriesAt, count: n } = locationsTable(body, damaged);
  const out: ChunkLocation[] = [];
  for (let i = 0, at = entriesAt; i < n; i++, at += ENTRY_BYTES) {
    const pack = packs[body.readUInt32BE(at + 32)];
    if (pack === undefined) throw damaged(`entry ${i} names a pack it does not list`);
    out.push({
      chunkId: Buffer.from(body.subarray(at, at + 32)),
      pack,
      offset: body.readUInt32BE(at + 36),
      length: body.readUInt32BE(at + 40),
      plaintextLength: body.readUInt32BE(at + 44),
    });
  }
  return out;
}

/**
 * The frame of the locations encoded in `body`, checked to fill it exactly: the packs they name,
 * where the first entry starts and how many there are. Entry i lies at entriesAt + i * ENTRY_BYTES:
 * chunk id, then pack ordinal, offset, length and plaintext length (uint32 each, big-endian).
 */
export function locationsTable(body: Buffer, damaged: (detail: string) => Error): { packs: string[]; entriesAt: number; count: number } {
  if (body.length < 8) throw damaged('it is cut short');
  const p = body.readUInt32BE(0);
  const nAt = 4 + p * 32;
  if (body.length < nAt + 4) throw damaged('its pack table is cut short');
  const packs = Array.from({ length: p }, (_, i) => body.toString('hex', 4 + i * 32, 4 + (i + 1) * 32));
  const count = body.readUInt32BE(nAt);
  if (body.length !== nAt + 4 + count * ENTRY_BYTES) throw damaged('its entries do not fill it');
  return { packs, entriesAt: nAt + 4, count };
}
