import { createCipheriv, createHash } from 'node:crypto';

/**
 * The same "random" bytes on every run and machine: AES-256-CTR keystream under a key made from
 * `label`. For tests that pin chunk boundaries or compare runs.
 */
export function pseudoRandomBytes(label: string, length: number): Buffer {
  const key = createHash('sha256').update(label).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

/** `data` handed out in pieces of `pieceBytes` (the last may be shorter), as a stream source does. */
export async function* inPieces(data: Buffer, pieceBytes: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += pieceBytes) yield data.subarray(at, at + pieceBytes);
}
