import * as stream from 'node:stream';
import type { Duplex, Transform } from 'node:stream';
import { createCompressStream, createDecompressStream, type CompressOptions } from './compress.js';
import { createDecryptStream, createEncryptStream, type ChunkCipherOptions } from './chunk-cipher.js';

/**
 * stream.compose exists since Node 16.9 (one Duplex whose writes enter the first stage and whose
 * reads come from the last, with errors and backpressure propagated), but @types/node 20 does not
 * declare it.
 */
const compose = (stream as unknown as { compose(...stages: Transform[]): Duplex }).compose;

export interface SealOptions extends ChunkCipherOptions {
  compressionLevel?: number;
  compressionWorkers?: CompressOptions['workers'];
}

/** Role data in, the stored file out: compress, then encrypt in chunks. */
export function sealRoleStream(opts: SealOptions): Duplex {
  return compose(createCompressStream({ level: opts.compressionLevel, workers: opts.compressionWorkers }), createEncryptStream(opts));
}

/** The stored file in, role data out; nothing leaves before its chunk authenticated. */
export function openRoleStream(opts: ChunkCipherOptions): Duplex {
  return compose(createDecryptStream(opts), createDecompressStream());
}

export { createHashTap, type HashTap, type HashTapDigest } from './hash-tap.js';
