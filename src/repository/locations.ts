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
const ENTRY_BYTES = CHUNK_ID_BYTES + 16;

/** Locations read one field at a time, without an object per entry (a role's catalog, an index file). */
export interface LocationTable {
  readonly length: number;
  /** The name (hex) of the pack entry i lies in. */
  packOf(i: number): string;
  /** Copies entry i's chunk id into `target` at `at`. */
  copyIdTo(i: number, target: Buffer, at: number): void;
  offsetOf(i: number): number;
  lengthOf(i: number): number;
  plaintextLengthOf(i: number): number;
}

/** An array of locations as a table. */
export function tableOf(locations: readonly ChunkLocation[]): LocationTable {
  return {
    length: locations.length,
    packOf: (i) => locations[i]!.pack,
    copyIdTo: (i, target, at) => {
      locations[i]!.chunkId.copy(target, at);
    },
    offsetOf: (i) => locations[i]!.offset,
    lengthOf: (i) => locations[i]!.length,
    plaintextLengthOf: (i) => locations[i]!.plaintextLength,
  };
}

/** The encoded locations; `before` bytes are left (zero) ahead of them for the caller's header. */
export function encodeLocations(locations: readonly ChunkLocation[] | LocationTable, before = 0): Buffer {
  const table = Array.isArray(locations) ? tableOf(locations) : (locations as LocationTable);
  const named = new Set<string>();
  for (let i = 0; i < table.length; i++) named.add(table.packOf(i));
  const packs = [...named].sort();
  const ordinal = new Map(packs.map((p, i) => [p, i]));
  const out = Buffer.alloc(before + 4 + packs.length * 32 + 4 + table.length * ENTRY_BYTES);
  let at = out.writeUInt32BE(packs.length, before);
  for (const p of packs) at += out.write(p, at, 32, 'hex');
  at = out.writeUInt32BE(table.length, at);
  for (let i = 0; i < table.length; i++) {
    table.copyIdTo(i, out, at);
    at += CHUNK_ID_BYTES;
    at = out.writeUInt32BE(ordinal.get(table.packOf(i))!, at);
    at = out.writeUInt32BE(table.offsetOf(i), at);
    at = out.writeUInt32BE(table.lengthOf(i), at);
    at = out.writeUInt32BE(table.plaintextLengthOf(i), at);
  }
  return out;
}

/** Receives one decoded entry; `id` is a view into the encoded bytes (copy it to keep it). */
export type LocationVisitor = (id: Buffer, pack: string, offset: number, length: number, plaintextLength: number) => void;

/**
 * Each location encoded in `body`, handed to `visit` in order without an object per entry, once
 * the whole body is checked (it must be filled exactly, and every entry name a listed pack), so
 * nothing is visited from a body that turns out damaged. `damaged(detail)` makes the error.
 */
export function visitLocations(body: Buffer, damaged: (detail: string) => Error, visit: LocationVisitor): void {
  const { packs, count, first } = checkedLocations(body, damaged);
  for (let i = 0, at = first; i < count; i++, at += ENTRY_BYTES) {
    visit(
      body.subarray(at, at + 32),
      packs[body.readUInt32BE(at + 32)]!,
      body.readUInt32BE(at + 36),
      body.readUInt32BE(at + 40),
      body.readUInt32BE(at + 44),
    );
  }
}

/** Where an encoded body's entries lie, once the whole body is checked (see visitLocations). */
export interface CheckedLocations {
  /** The pack table: the names its entries' pack numbers stand for. */
  packs: string[];
  count: number;
  /** The offset of entry 0; entry i lies ENTRY_BYTES * i after it: id (32), pack, offset, length, plaintext length (uint32 BE each). */
  first: number;
}

export const LOCATION_ENTRY_BYTES = ENTRY_BYTES;

/** The layout of the locations encoded in `body`, which must fill it exactly, every entry naming a listed pack. */
export function checkedLocations(body: Buffer, damaged: (detail: string) => Error): CheckedLocations {
  if (body.length < 8) throw damaged('it is cut short');
  const p = body.readUInt32BE(0);
  const nAt = 4 + p * 32;
  if (body.length < nAt + 4) throw damaged('its pack table is cut short');
  const n = body.readUInt32BE(nAt);
  if (body.length !== nAt + 4 + n * ENTRY_BYTES) throw damaged('its entries do not fill it');
  for (let i = 0, at = nAt + 4; i < n; i++, at += ENTRY_BYTES) {
    if (body.readUInt32BE(at + 32) >= p) throw damaged(`entry ${i} names a pack it does not list`);
  }
  const packs = Array.from({ length: p }, (_, i) => body.toString('hex', 4 + i * 32, 4 + (i + 1) * 32));
  return { packs, count: n, first: nAt + 4 };
}

/** The locations encoded in `body`, which they must fill exactly; `damaged(detail)` makes the error. */
export function decodeLocations(body: Buffer, damaged: (detail: string) => Error): ChunkLocation[] {
  const out: ChunkLocation[] = [];
  visitLocations(body, damaged, (id, pack, offset, length, plaintextLength) =>
    out.push({ chunkId: Buffer.from(id), pack, offset, length, plaintextLength }),
  );
  return out;
}
