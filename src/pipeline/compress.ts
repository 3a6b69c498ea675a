import { Transform, type TransformCallback } from 'node:stream';
import { CompressStream, DecompressStream } from 'zstd-napi';
import { AzsError, ExitCode } from '../errors.js';

export interface CompressOptions {
  /** zstd level; 1 keeps up with a fast share, higher trades speed for size. */
  level?: number;
  /**
   * zstd's own worker threads. With 1 or more, compression runs off the event loop's thread, so
   * the cipher, the hash and the I/O share the other core (see scripts/bench-pipeline.ts).
   */
  workers?: number;
}

export const DEFAULT_COMPRESSION_LEVEL = 1;
export const DEFAULT_COMPRESSION_WORKERS = 1;

export function createCompressStream(levelOrOptions?: number | CompressOptions): Transform {
  const opts = typeof levelOrOptions === 'number' ? { level: levelOrOptions } : (levelOrOptions ?? {});
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
  return new CompressStream({ compressionLevel: level, nbWorkers: workers, checksumFlag: false });
}

/**
 * The data was authenticated before it reaches the decompressor, so a zstd error here means the
 * data was bad before it was encrypted (or a bug); it is still reported as a data error, not a crash.
 */
class CheckedDecompressStream extends DecompressStream {
  override _transform(chunk: unknown, encoding: string, done: TransformCallback): void {
    super._transform(chunk, encoding, (err?: Error | null, data?: unknown) => done(err ? decompressError(err) : null, data));
  }
  override _flush(done: TransformCallback): void {
    super._flush((err?: Error | null, data?: unknown) => done(err ? decompressError(err) : null, data));
  }
}

function decompressError(cause: Error): AzsError {
  return new AzsError(`The decrypted data is not valid zstd: ${cause.message}.`, {
    errorId: 'DecompressionFailed',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    recommendedAction: 'The backup authenticated but does not decompress; it was probably written by a faulty version. Restore from another backup.',
    cause,
  });
}

export function createDecompressStream(): Transform {
  return new CheckedDecompressStream();
}
