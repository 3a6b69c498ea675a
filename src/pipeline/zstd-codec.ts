import binding from 'zstd-napi/binding.js';
import { AzsError, ExitCode } from '../errors.js';

/**
 * zstd over zstd-napi's native binding rather than its stream classes: those allocate a fresh
 * 128 KiB buffer per output (above glibc's mmap threshold, so every one costs page faults) and
 * expand compressed input without regard to backpressure. Here output is carved from 1 MiB slabs,
 * and decoding proceeds one output step at a time so the caller can stop when downstream is full.
 */
const SLAB_BYTES = 1024 * 1024;
const MIN_STEP_BYTES = 64 * 1024;
const MAX_SPARE_SLABS = 16;
const EMPTY = Buffer.alloc(0);

/**
 * Output is carved from 1 MiB slabs. A slab whose pieces have all been given back (recycle()) is
 * carved again instead of a fresh one being allocated: on the restore path the pieces are handed
 * back once tar has taken them, so a handful of slabs stay hot in the cache and the TLB. Fresh
 * memory is dear on a VM: writing 512 MiB to a socket took 5x longer from fresh 1 MiB buffers
 * than from one reused buffer. A piece never given back is simply left to the garbage collector.
 */
class SlabPool {
  private slab: Buffer = Buffer.allocUnsafe(0);
  private at = 0;
  private current: SlabRecord = { out: 0, retired: true };
  private readonly spare: Buffer[] = [];
  /**
   * Keyed by the slab's memory and by the piece, and holding no buffer, so that bookkeeping never
   * keeps memory alive that nobody gives back.
   */
  private readonly records = new WeakMap<ArrayBufferLike, SlabRecord>();
  private readonly out = new WeakSet<Buffer>();

  /** Free space of at least MIN_STEP_BYTES; another slab when the current one is nearly used up. */
  space(): Buffer {
    if (this.slab.length - this.at < MIN_STEP_BYTES) {
      this.current.retired = true;
      if (this.current.out === 0) this.keep(this.slab.buffer);
      this.slab = this.spare.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.at = 0;
      this.current = { out: 0, retired: false };
      this.records.set(this.slab.buffer, this.current);
    }
    return this.slab.subarray(this.at);
  }

  /** Hands out the first n bytes of the last space(); they are not written again until given back. */
  take(n: number): Buffer {
    const piece = this.slab.subarray(this.at, this.at + n);
    this.at += n;
    if (n > 0) {
      this.out.add(piece);
      this.current.out++;
    }
    return piece;
  }

  /** The holder of `piece` is done with it. Anything else (an unknown buffer, a second call) is ignored. */
  recycle(piece: Buffer): void {
    if (!this.out.delete(piece)) return;
    const record = this.records.get(piece.buffer);
    if (record && --record.out === 0 && record.retired) this.keep(piece.buffer);
  }

  private keep(memory: ArrayBufferLike): void {
    if (memory.byteLength === SLAB_BYTES && this.spare.length < MAX_SPARE_SLABS) this.spare.push(Buffer.from(memory, 0, SLAB_BYTES));
  }
}

interface SlabRecord {
  /** Pieces out and not yet given back. */
  out: number;
  /** No more pieces will be carved from it. */
  retired: boolean;
}

export function decompressionError(detail: string, cause?: unknown): AzsError {
  return new AzsError(`The decrypted data is not valid zstd: ${detail}.`, {
    errorId: 'DecompressionFailed',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    recommendedAction: 'The data authenticated but does not decompress, so it was bad before it was encrypted. Restore from another backup.',
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
  private readonly slab = new SlabPool();

  constructor(opts: ZstdEncoderOptions) {
    this.cctx.setParameter(binding.CParameter.compressionLevel, opts.level);
    if (opts.workers > 0) this.cctx.setParameter(binding.CParameter.nbWorkers, opts.workers);
  }

  private run(src: Buffer, op: binding.EndDirective, out: Buffer[]): void {
    for (;;) {
      const dst = this.slab.space();
      const [remaining, produced, consumed] = this.cctx.compressStream2(dst, src, op);
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
  private readonly slab = new SlabPool();
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
