import { Duplex } from 'node:stream';
import type { Codec } from './codec.js';

const MiB = 1024 * 1024;

/**
 * A codec as a stream on the calling thread. Output is pulled from the codec only while downstream
 * wants more, so a decompression bomb stops at the readable buffer instead of filling memory.
 */
export class CodecStream extends Duplex {
  private pendingCallback: ((err?: Error | null) => void) | undefined;
  private ending = false;
  private scheduled = false;

  constructor(private readonly codec: Codec) {
    super({ writableHighWaterMark: MiB, readableHighWaterMark: MiB });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    try {
      this.codec.write(chunk);
    } catch (err) {
      return callback(err as Error);
    }
    this.pendingCallback = callback;
    this.schedule();
  }

  override _final(callback: (err?: Error | null) => void): void {
    try {
      this.codec.end();
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

  /** See Codec.recycle: for the stream's last reader, once it has finished with a chunk it read. */
  readonly recycle = (chunk: Buffer): void => this.codec.recycle(chunk);

  /** See Codec.handInputBackTo: where chunks written to this stream go once it is done with them. */
  handInputBackTo(recycle: (chunk: Buffer) => void): void {
    this.codec.handInputBackTo?.(recycle);
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
      for (let piece = this.codec.read(); piece !== undefined; piece = this.codec.read()) {
        if (!this.push(piece)) return;
      }
      const callback = this.pendingCallback;
      if (callback) {
        this.pendingCallback = undefined;
        if (this.ending) {
          this.codec.finish();
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
