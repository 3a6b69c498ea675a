import { createDecipheriv, createHash, hkdfSync } from 'node:crypto';

/**
 * The sealed role-file format of docs/FORMAT.md section 4, written from that text alone (not the
 * product's code), for the independent writer (forger.ts) and reader (repository-reader.ts) of the
 * tests: the file key's derivation, and opening a sealed file back to its compressed plaintext.
 */

export const hkdf = (ikm: Buffer, salt: Buffer, info: Buffer | string, length = 32): Buffer =>
  Buffer.from(hkdfSync('sha256', ikm, salt, typeof info === 'string' ? Buffer.from(info, 'utf8') : info, length));

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

const lengthPrefixed = (s: string): Buffer => Buffer.concat([u32(Buffer.byteLength(s)), Buffer.from(s, 'utf8')]);

export const SEALED_HEADER_BYTES = 48;

/** fileKey = HKDF(dataKey, salt = header.salt, info = "AzsBackup chunk key v1" || 0x00 || SHA-256(binding)). */
export function sealedFileKey(dataKey: Buffer, salt: Buffer, backup: string, role: string, file: string): Buffer {
  const binding = Buffer.concat([lengthPrefixed(backup), lengthPrefixed(role), lengthPrefixed(file)]);
  const info = Buffer.concat([Buffer.from('AzsBackup chunk key v1\0', 'utf8'), createHash('sha256').update(binding).digest()]);
  return hkdf(dataKey, salt, info);
}

/** nonce_i = three zero bytes || uint64(i) || lastFlag. */
export function sealedNonce(i: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(BigInt(i), 3);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

/**
 * The compressed plaintext of a sealed file (still one zstd frame sequence): every chunk
 * authenticated under the key bound to backup, role and file name; the last one must carry the
 * last flag and end the file. Throws on anything else.
 */
export function openSealedFile(file: Buffer, dataKey: Buffer, backup: string, role: string, fileName: string): Buffer {
  if (file.length < SEALED_HEADER_BYTES) throw new Error(`${fileName}: shorter than its header`);
  const header = file.subarray(0, SEALED_HEADER_BYTES);
  if (header.toString('latin1', 0, 8) !== 'AZSCHUNK' || header[8] !== 1 || header[9] !== 1 || header.readUInt16BE(10) !== 0)
    throw new Error(`${fileName}: not an AZSCHUNK version 1 suite 1 file`);
  const chunkSize = header.readUInt32BE(12);
  if (chunkSize < 4096 || chunkSize > 64 * 1024 * 1024) throw new Error(`${fileName}: chunk size ${chunkSize} out of range`);
  const key = sealedFileKey(dataKey, header.subarray(16, 48), backup, role, fileName);
  const sealed = chunkSize + 16;
  const body = file.subarray(SEALED_HEADER_BYTES);
  const count = Math.max(1, Math.ceil(body.length / sealed));
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const piece = body.subarray(i * sealed, (i + 1) * sealed);
    if (piece.length < 16) throw new Error(`${fileName}: chunk ${i} is shorter than its tag`);
    const decipher = createDecipheriv('aes-256-gcm', key, sealedNonce(i, i === count - 1));
    decipher.setAAD(header);
    decipher.setAuthTag(piece.subarray(piece.length - 16));
    out.push(decipher.update(piece.subarray(0, piece.length - 16)), decipher.final());
  }
  return Buffer.concat(out);
}
