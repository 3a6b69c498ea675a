import { AzsError, ExitCode } from '../errors.js';
import { decodeLocations, encodeLocations, type LocationTable } from './locations.js';
import type { ChunkLocation } from './pack-reader.js';

/**
 * A role's catalog: the chunks of its stream in order, and where each lies. It is what a format 3
 * backup stores per role in place of the data (`<Role>.azscat`), sealed exactly as a role file is
 * (FORMAT.md section 4: chunked AES-256-GCM under the backup's data key, bound to backup, role and
 * file name), so BackupInfo.xml's digest, seal and authenticators cover it unchanged.
 *
 *   catalog = "AZS-CATL" || version 0x01 || 7 zero bytes || uint64 stream length || locations (locations.ts)
 *
 * Locations make a restore independent of the index: it reads the packs the catalog names. Packs
 * are never rewritten, and prune keeps every pack a committed backup names (BackupInfo.xml's
 * Repository element), so the places stay true for as long as the backup exists.
 */
export const CATALOG_MAGIC = Buffer.from('AZS-CATL', 'ascii');
const HEADER_BYTES = 24;
const VERSION = 1;
/** A catalog is read whole: 48 bytes a chunk of about 1 MiB, so this holds a role of several TiB. */
export const MAX_CATALOG_BYTES = 256 * 1024 * 1024;

export interface Catalog {
  streamLength: number;
  chunks: ChunkLocation[];
}

/** A catalog's chunks may be given as a table (ChunkIndex.locationsOf): no object per chunk. */
export function encodeCatalog(catalog: Catalog | { streamLength: number; chunks: LocationTable }): Buffer {
  const out = encodeLocations(catalog.chunks, HEADER_BYTES);
  CATALOG_MAGIC.copy(out, 0);
  out[8] = VERSION;
  out.writeBigUInt64BE(BigInt(catalog.streamLength), 16);
  return out;
}

function catalogDamaged(file: string, detail: string): AzsError {
  return new AzsError(`The catalog ${file} is not usable: ${detail}.`, {
    errorId: 'CatalogDamaged',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    targetObject: file,
    recommendedAction: 'Restore from another backup (Get-InfrastructureBackup); this one was not written by this version, or was changed.',
  });
}

/** The catalog in `bytes` (already authenticated: it was opened under the backup's data key). */
export function decodeCatalog(file: string, bytes: Buffer): Catalog {
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, 8).equals(CATALOG_MAGIC) || bytes[8] !== VERSION)
    throw catalogDamaged(file, 'it is not an AZS-CATL version 1 catalog');
  const streamLength = Number(bytes.readBigUInt64BE(16));
  const chunks = decodeLocations(bytes.subarray(HEADER_BYTES), (detail) => catalogDamaged(file, detail));
  const sum = chunks.reduce((n, c) => n + c.plaintextLength, 0);
  if (sum !== streamLength) throw catalogDamaged(file, `its chunks hold ${sum} bytes, not the ${streamLength} it says`);
  return { streamLength, chunks };
}

/** The catalog in an opened (decrypted and authenticated) catalog file, read whole up to MAX_CATALOG_BYTES. */
export async function readCatalogFrom(file: string, plaintext: AsyncIterable<Buffer>): Promise<Catalog> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const piece of plaintext) {
    bytes += piece.length;
    if (bytes > MAX_CATALOG_BYTES) throw catalogDamaged(file, `it is larger than ${MAX_CATALOG_BYTES} bytes`);
    parts.push(Buffer.from(piece));
  }
  return decodeCatalog(file, Buffer.concat(parts));
}
