import { ChunkOpener, ChunkSealer, type ChunkCipherOptions } from './chunk-cipher.js';
import { OpeningCodec, SealingCodec } from './codec.js';
import { CodecStream } from './codec-streams.js';
import { createEncoder, type CompressOptions } from './compress.js';
import { ZstdDecoder } from './zstd-codec.js';

export interface SealOptions extends ChunkCipherOptions {
  compressionLevel?: number;
  compressionWorkers?: CompressOptions['workers'];
}

/** Role data in, the stored file out: zstd, then chunked AES-256-GCM (format in chunk-cipher.ts). */
export function sealRoleStream(opts: SealOptions): CodecStream {
  return new CodecStream(
    new SealingCodec(createEncoder({ level: opts.compressionLevel, workers: opts.compressionWorkers }), new ChunkSealer(opts)),
  );
}

/**
 * The stored file in, role data out; nothing leaves before its chunk authenticated. Its reader
 * may give chunks back with recycle() once done with them.
 */
export function openRoleStream(opts: ChunkCipherOptions): CodecStream {
  return new CodecStream(new OpeningCodec(new ChunkOpener(opts), new ZstdDecoder()));
}

export { createHashTap, type HashTap, type HashTapDigest } from './hash-tap.js';
