import binding from 'zstd-napi/binding.js';
import { AzsError, ExitCode } from '../errors.js';
import { SlabPool } from '../memory/slab-pool.js';

/**
 * zstd over zstd-napi's native binding rather than its stream classes: those allocate a fresh
 * 128 KiB buffer per output (above glibc's mmap threshold, so every one costs page faults) and
 * expand compressed input without regard to backpressure. Here output is carved from 1 MiB slabs,
 * and decoding proceeds one output step at a time so the caller can stop when downstream is full.
 */
const SLAB_BYTES = 1024 * 1024;
const MIN_STEP_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

export function decompressionError(detail: string, cause?: unknown): AzsError {
  return new AzsError(`The decrypted data is not valid zstd: ${detail}.`, {
    errorId: 'DecompressionFailed',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    recommendedAction:
      'The data authenticated but does not decompress, so it was bad before it was encrypted. Restore from another backup.',
    cause,
  });
}

export interface ZstdEncoderOptions {
  level: number;
  /** zstd worker threads; 0 compresses on the calling thread. */
  workers: number;
}

export class ZstdEncoder {
  private readonly cctx = new binding.CCtx();
  private readonly slab = new SlabPool(SLAB_BYTES, MIN_STEP_BYTES);
  /** Worker threads asked for and not yet known to be running. */
  private unstartedWorkers: number;

  constructor(opts: ZstdEncoderOptions) {
    this.cctx.setParameter(binding.CParameter.compressionLevel, opts.level);
    if (opts.workers > 0) this.cctx.setParameter(binding.CParameter.nbWorkers, opts.workers);
    this.unstartedWorkers = opts.workers;
  }

  /**
   * zstd starts its worker threads at the first call, and one it may not start (a process limit:
   * a cgroup's pids.max, ulimit -u, counts threads) fails that call as an allocation error. Nothing
   * has been compressed yet then: the same frame is compressed on this thread instead.
   */
  private compressStep(dst: Buffer, src: Buffer, op: binding.EndDirective): [number, number, number] {
    try {
      const step = this.cctx.compressStream2(dst, src, op);
      this.unstartedWorkers = 0;
      return step;
    } catch (e) {
      if (this.unstartedWorkers === 0 || !/allocation/i.test((e as Error)?.message ?? '')) throw e;
      this.unstartedWorkers = 0;
      this.cctx.reset(binding.ResetDirective.sessionOnly);
      this.cctx.setParameter(binding.CParameter.nbWorkers, 0);
      return this.cctx.compressStream2(dst, src, op);
    }
  }

  private run(src: Buffer, op: binding.EndDirective, out: Buffer[]): void {
    for (;;) {
      const dst = this.slab.space();
      const [remaining, produced, consumed] = this.compressStep(dst, src, op);
      if (produced > 0) out.push(this.slab.take(produced));
      src = src.subarray(consumed);
      if (src.length === 0 && (op === binding.EndDirective.continue || remaining === 0)) return;
    }
  }

  write(src: Buffer, out: Buffer[]): void {
    if (src.length > 0) this.run(src, binding.EndDirective.continue, out);
  }

  end(out: Buffer[]): void {
    this.run(EMPTY, binding.EndDirective.end, out);
  }

  /** See SlabPool.recycle. */
  recycle(piece: Buffer): void {
    this.slab.recycle(piece);
  }
}

export interface DecodeStep {
  /** Decompressed bytes of this step (possibly empty). */
  output: Buffer;
  /** Bytes of the input used. */
  consumed: number;
  /** The output space filled up, so zstd may hold more output: step again even without input. */
  more: boolean;
}

export class ZstdDecoder {
  private readonly dctx = new binding.DCtx();
  private readonly slab = new SlabPool(SLAB_BYTES, MIN_STEP_BYTES);
  private inFrame = false;

  step(src: Buffer): DecodeStep {
    const dst = this.slab.space();
    let result: [number, number, number];
    try {
      result = this.dctx.decompressStream(dst, src);
    } catch (cause) {
      throw decompressionError(cause instanceof Error ? cause.message : String(cause), cause);
    }
    const [hint, produced, consumed] = result;
    // hint 0 means a frame just ended; anything else means we are inside one. A call that moved no
    // bytes (asking for more output after a frame ended exactly at the end of the buffer) says
    // nothing about the frame, but zstd answers it with the size of a next frame's header.
    if (consumed > 0 || produced > 0) this.inFrame = hint !== 0;
    return { output: this.slab.take(produced), consumed, more: produced === dst.length };
  }

  /** See SlabPool.recycle. */
  recycle(piece: Buffer): void {
    this.slab.recycle(piece);
  }

  finish(): void {
    if (this.inFrame) throw decompressionError('it ends in the middle of a compressed frame');
  }
}
