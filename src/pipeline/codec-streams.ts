import { Duplex, Transform, type TransformCallback } from 'node:stream';
import type { ChunkOpener, ChunkSealer } from './chunk-cipher.js';
import { decompressionError, type ZstdDecoder, type ZstdEncoder } from './zstd-codec.js';

const MiB = 1024 * 1024;
const EMPTY = Buffer.alloc(0);

/**
 * Compress and/or seal in one stream object. Composing two Node streams costs a hand-off per
 * slice (and stream.compose even concatenates what it reads); calling the stages directly does not.
 */
export class SealingStream extends Transform {
  constructor(
    private readonly encoder: ZstdEncoder | undefined,
    private readonly sealer: ChunkSealer | undefined,
  ) {
    super({ writableHighWaterMark: MiB, readableHighWaterMark: MiB });
  }

  private pushAll(fill: (compressed: Buffer[]) => void, last: boolean, done: TransformCallback): void {
    const compressed: Buffer[] = [];
    let out: Buffer[] = compressed;
    try {
      fill(compressed);
      if (this.sealer) {
        out = [];
        for (const piece of compressed) this.sealer.write(piece, out);
        if (last) this.sealer.end(out);
      }
    } catch (err) {
      return done(err as Error);
    }
    for (const piece of out) this.push(piece);
    done();
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.pushAll((c) => (this.encoder ? this.encoder.write(data, c) : c.push(data)), false, done);
  }

  override _flush(done: TransformCallback): void {
    this.pushAll((c) => this.encoder?.end(c), true, done);
  }
}

/**
 * Open and/or decompress in one stream object. Decompression is pulled one output step at a time
 * and stops while downstream is full: a chunk of compressed zeros can expand a thousandfold, and
 * a restore must not hold that in memory.
 */
export class OpeningStream extends Duplex {
  /** Authenticated, still compressed bytes. */
  private readonly queue: Buffer[] = [];
  private decoderHasMore = false;
  private pendingCallback: ((err?: Error | null) => void) | undefined;
  private ending = false;
  private scheduled = false;

  constructor(
    private readonly opener: ChunkOpener | undefined,
    private readonly decoder: ZstdDecoder | undefined,
  ) {
    super({ writableHighWaterMark: MiB, readableHighWaterMark: MiB });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    try {
      if (this.opener) this.opener.write(chunk, this.queue);
      else this.queue.push(chunk);
    } catch (err) {
      return callback(err as Error);
    }
    this.pendingCallback = callback;
    this.schedule();
  }

  override _final(callback: (err?: Error | null) => void): void {
    try {
      this.opener?.end(this.queue);
    } catch (err) {
      return callback(err as Error);
    }
    this.ending = true;
    this.pendingCallback = callback;
    this.schedule();
  }

  override _read(): void {
    this.schedule();
  }

  /**
   * Work always starts on a fresh tick: push() can synchronously reach _read, and a write
   * callback can synchronously bring the next _write, and neither may land inside a running pump.
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.destroyed) return;
    try {
      while (this.queue.length > 0 || this.decoderHasMore) {
        const src = this.queue[0] ?? EMPTY;
        if (!this.decoder) {
          this.queue.shift();
          if (!this.push(src)) return;
          continue;
        }
        const step = this.decoder.step(src);
        if (step.consumed >= src.length) {
          if (src.length > 0) this.queue.shift();
        } else {
          this.queue[0] = src.subarray(step.consumed);
        }
        this.decoderHasMore = step.more;
        if (step.consumed === 0 && step.output.length === 0 && !step.more && src.length > 0) {
          throw decompressionError('the decompressor made no progress');
        }
        if (step.output.length > 0 && !this.push(step.output)) return;
      }
      const callback = this.pendingCallback;
      if (callback) {
        this.pendingCallback = undefined;
        if (this.ending) {
          this.decoder?.finish();
          this.push(null);
        }
        callback();
      }
    } catch (err) {
      const callback = this.pendingCallback;
      this.pendingCallback = undefined;
      if (callback) callback(err as Error);
      else this.destroy(err as Error);
    }
  }
}
