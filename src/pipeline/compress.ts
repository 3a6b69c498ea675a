import type { Duplex } from 'node:stream';
import { AzsError, ExitCode } from '../errors.js';
import { OpeningCodec, SealingCodec } from './codec.js';
import { CodecStream } from './codec-streams.js';
import { ZstdDecoder, ZstdEncoder } from './zstd-codec.js';

export interface CompressOptions {
  /** zstd level 1..19; 1 keeps up with a fast share, higher trades speed for size. */
  level?: number;
  /**
   * zstd's own worker threads. With 1 or more, compression runs off the event loop's thread, so
   * the cipher, the hash and the I/O use the other core (see scripts/bench-pipeline.ts).
   */
  workers?: number;
}

export const DEFAULT_COMPRESSION_LEVEL = 1;
export const DEFAULT_COMPRESSION_WORKERS = 2;

/** Validates options and makes the encoder; shared by the compress stage and the sealing role stream. */
export function createEncoder(opts: CompressOptions = {}): ZstdEncoder {
  const level = opts.level ?? DEFAULT_COMPRESSION_LEVEL;
  if (!Number.isInteger(level) || level < 1 || level > 19) {
    throw new AzsError(`Compression level ${String(level)} is outside 1..19.`, {
      errorId: 'InvalidCompressionLevel',
      category: 'InvalidArgument',
      exitCode: ExitCode.Usage,
      recommendedAction: 'Use a level from 1 (fastest, the default) to 19 (smallest).',
    });
  }
  const workers = opts.workers ?? DEFAULT_COMPRESSION_WORKERS;
  if (!Number.isInteger(workers) || workers < 0 || workers > 16) {
    throw new AzsError(`${String(workers)} compression workers is outside 0..16.`, {
      errorId: 'InvalidCompressionWorkers',
      category: 'InvalidArgument',
      exitCode: ExitCode.Usage,
    });
  }
  return new ZstdEncoder({ level, workers });
}

export function createCompressStream(levelOrOptions?: number | CompressOptions): Duplex {
  const opts = typeof levelOrOptions === 'number' ? { level: levelOrOptions } : levelOrOptions;
  return new CodecStream(new SealingCodec(createEncoder(opts), undefined));
}

/** Errors are AzsError 'DecompressionFailed' (InvalidData, exit 12); output respects backpressure. */
export function createDecompressStream(): Duplex {
  return new CodecStream(new OpeningCodec(undefined, new ZstdDecoder()));
}
