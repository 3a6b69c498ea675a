import type { ChunkOpener, ChunkSealer } from './chunk-cipher.js';
import { decompressionError, type ZstdDecoder, type ZstdEncoder } from './zstd-codec.js';

/**
 * The stages of a role file as plain synchronous objects: bytes in with write()/end(), bytes out
 * with read(). One stream class (codec-streams.ts) drives both directions, and the stages can be
 * tested and benchmarked without streams around them.
 */
export interface Codec {
  /** Takes input; throws AzsError on data that fails (a chunk that does not authenticate, bad zstd). */
  write(data: Buffer): void;
  /** No more input. */
  end(): void;
  /**
   * The next piece of output, or undefined when the codec needs more input (or, after end(), when
   * everything is out). Output is produced lazily so the caller can stop when downstream is full.
   */
  read(): Buffer | undefined;
  /** Call once read() returned undefined after end(): throws if the input ended early. */
  finish(): void;
  /**
   * Gives back a piece of output that its holder has finished with, so its memory can be written
   * again (see src/memory/slab-pool.ts). Optional for the holder: a piece never given back is
   * left to the garbage collector. Giving back a piece still in use would corrupt it.
   */
  recycle(piece: Buffer): void;
  /**
   * Optional: hands each buffer given to write() to `recycle` once the codec holds none of it,
   * so its source may read into it again. Without it, written buffers are left to the collector.
   */
  handInputBackTo?(recycle: (chunk: Buffer) => void): void;
}

const EMPTY = Buffer.alloc(0);

/** Compress and/or seal. Compressed output is never larger than a chunk's worth beyond its input. */
export class SealingCodec implements Codec {
  private readonly out: Buffer[] = [];

  constructor(
    private readonly encoder: ZstdEncoder | undefined,
    private readonly sealer: ChunkSealer | undefined,
  ) {}

  /** Where input buffers go once the encoder (or, without one, the sealer) has read them. */
  private giveInputBack: ((chunk: Buffer) => void) | undefined;

  /** Hands each input buffer to `recycle` once nothing here holds any of it. */
  handInputBackTo(recycle: (chunk: Buffer) => void): void {
    this.giveInputBack = recycle;
  }

  private take(compressed: Buffer[], last: boolean): void {
    let out = compressed;
    if (this.sealer) {
      out = [];
      for (const piece of compressed) this.sealer.write(piece, out);
      if (last) this.sealer.end(out);
      // The sealer has encrypted these to their last byte: zstd may write its next output there.
      const consumed = this.sealer.consumedInput();
      const giveBack = this.encoder ? (c: Buffer) => this.encoder!.recycle(c) : this.giveInputBack;
      if (giveBack) for (const chunk of consumed) giveBack(chunk);
    }
    this.out.push(...out);
  }

  write(data: Buffer): void {
    const compressed: Buffer[] = [];
    if (this.encoder) {
      this.encoder.write(data, compressed);
      // zstd has copied all of it (write() returns only once the input is consumed).
      this.giveInputBack?.(data);
    } else compressed.push(data);
    this.take(compressed, false);
  }

  end(): void {
    const compressed: Buffer[] = [];
    this.encoder?.end(compressed);
    this.take(compressed, true);
  }

  read(): Buffer | undefined {
    return this.out.shift();
  }

  finish(): void {}

  recycle(piece: Buffer): void {
    if (this.sealer) this.sealer.recycle(piece);
    else this.encoder?.recycle(piece);
  }
}

/**
 * Open and/or decompress. Decompression is pulled one output step at a time: a chunk of
 * compressed zeros can expand a thousandfold, and a restore must not hold that in memory.
 */
export class OpeningCodec implements Codec {
  /** Authenticated, still compressed bytes: the opener's buffers, the first one read from `headAt` on. */
  private readonly queue: Buffer[] = [];
  private headAt = 0;
  private decoderHasMore = false;

  constructor(
    private readonly opener: ChunkOpener | undefined,
    private readonly decoder: ZstdDecoder | undefined,
  ) {}

  /** Where input buffers go once the opener has read them through (the source's recycle). */
  private giveInputBack: ((chunk: Buffer) => void) | undefined;

  /** Hands each input buffer to `recycle` once nothing here holds any of it. */
  handInputBackTo(recycle: (chunk: Buffer) => void): void {
    this.giveInputBack = recycle;
  }

  write(data: Buffer): void {
    if (!this.opener) return void this.queue.push(data);
    this.opener.write(data, this.queue);
    this.returnInput(this.opener);
  }

  end(): void {
    if (!this.opener) return;
    this.opener.end(this.queue);
    this.returnInput(this.opener);
  }

  private returnInput(opener: ChunkOpener): void {
    // Taken even when nobody wants them, so the opener's list does not grow.
    const consumed = opener.consumedInput();
    if (this.giveInputBack) for (const chunk of consumed) this.giveInputBack(chunk);
  }

  read(): Buffer | undefined {
    while (this.queue.length > 0 || this.decoderHasMore) {
      if (!this.decoder) {
        const src = this.queue.shift()!;
        if (src.length > 0) return src;
        continue;
      }
      const head = this.queue[0];
      const src = head ? head.subarray(this.headAt) : EMPTY;
      const step = this.decoder.step(src);
      if (step.consumed >= src.length) {
        if (head) {
          // zstd copies what it keeps, so the opener may write its next chunk over this one.
          this.queue.shift();
          this.headAt = 0;
          this.opener?.recycle(head);
        }
      } else {
        this.headAt += step.consumed;
      }
      this.decoderHasMore = step.more;
      if (step.consumed === 0 && step.output.length === 0 && !step.more && src.length > 0) {
        throw decompressionError('the decompressor made no progress');
      }
      if (step.output.length > 0) return step.output;
    }
    return undefined;
  }

  finish(): void {
    this.decoder?.finish();
  }

  recycle(piece: Buffer): void {
    if (this.decoder) this.decoder.recycle(piece);
    else this.opener?.recycle(piece);
  }
}
