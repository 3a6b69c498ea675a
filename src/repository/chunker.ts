import { Transform, type TransformCallback } from 'node:stream';
import { DEFAULT_CDC_PARAMS, findCutTs, planCdc, type CdcParams, type CdcPlan, type FindCut, type ScanState } from './cdc.js';
import { nativeFindCut } from './cdc-native.js';

export interface ChunkerOptions {
  /** From gearTable(seed); the repository's keyed table. */
  gear: Uint32Array;
  params?: CdcParams;
  /** Force the TypeScript scanner even when the addon is there (tests compare the two). */
  implementation?: 'auto' | 'typescript';
}

/**
 * Cuts a byte stream into content-defined chunks. write() and end() push whole chunks to `out`.
 * It holds at most one chunk's worth of input (max size) plus the buffer being written, whatever
 * the stream's length. The buffers given to write() are kept (not copied) until their chunk is
 * complete, so a caller must not write into them again after handing them over.
 */
export class ContentChunker {
  readonly plan: CdcPlan;
  private readonly gear: Uint32Array;
  private readonly findCut: FindCut;
  private readonly state: ScanState = { length: 0, hash: 0 };
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private emitted = 0;

  constructor(opts: ChunkerOptions) {
    this.plan = planCdc(opts.params ?? DEFAULT_CDC_PARAMS);
    if (!(opts.gear instanceof Uint32Array) || opts.gear.length !== 256) throw new TypeError('gear must be a Uint32Array of 256 words');
    this.gear = opts.gear;
    this.findCut = (opts.implementation !== 'typescript' && nativeFindCut()) || findCutTs;
  }

  /** Which scanner runs: 'native' (the C addon) or 'typescript'. */
  get implementation(): 'native' | 'typescript' {
    return this.findCut === findCutTs ? 'typescript' : 'native';
  }

  write(buf: Buffer, out: Buffer[]): void {
    const runs: Buffer[][] = [];
    this.cut(buf, runs);
    for (const run of runs) out.push(joined(run));
  }

  /**
   * As write(), each complete chunk as the run of slices it spans (views of the buffers written,
   * in order), so a caller that copies chunks anyway copies each byte once.
   */
  cut(buf: Buffer, out: Buffer[][]): void {
    let from = 0;
    while (from < buf.length) {
      const cut = this.findCut(this.gear, this.plan, buf, from, buf.length, this.state);
      if (cut < 0) {
        this.hold(from === 0 ? buf : buf.subarray(from));
        return;
      }
      this.hold(buf.subarray(from, cut));
      out.push(this.take());
      from = cut;
    }
  }

  /** Whether bytes of `piece` are still held for a chunk not yet complete (then `piece` must not be written over). */
  holds(piece: Buffer): boolean {
    return this.pending.some(
      (s) => s.buffer === piece.buffer && s.byteOffset < piece.byteOffset + piece.length && s.byteOffset >= piece.byteOffset,
    );
  }

  /** The rest of the stream as its last chunk; an empty stream gives one empty chunk. */
  end(out: Buffer[]): void {
    const runs: Buffer[][] = [];
    this.cutEnd(runs);
    for (const run of runs) out.push(joined(run));
  }

  /** As end(), the last chunk as its run of slices (cut()). */
  cutEnd(out: Buffer[][]): void {
    if (this.pendingBytes > 0 || this.emitted === 0) out.push(this.take());
  }

  private hold(piece: Buffer): void {
    if (piece.length === 0) return;
    this.pending.push(piece);
    this.pendingBytes += piece.length;
  }

  private take(): Buffer[] {
    const run = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.state.length = 0;
    this.state.hash = 0;
    this.emitted++;
    return run;
  }
}

function joined(run: Buffer[]): Buffer {
  if (run.length === 1) return run[0]!;
  return run.length === 0 ? Buffer.alloc(0) : Buffer.concat(run);
}

/** The chunks of an async byte source, one at a time (the next is cut only when asked for). */
export async function* contentChunks(source: AsyncIterable<Buffer | Uint8Array>, opts: ChunkerOptions): AsyncGenerator<Buffer> {
  const chunker = new ContentChunker(opts);
  const out: Buffer[] = [];
  for await (const piece of source) {
    chunker.write(Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength), out);
    while (out.length > 0) yield out.shift()!;
  }
  chunker.end(out);
  while (out.length > 0) yield out.shift()!;
}

/** The chunker as a Transform: bytes in, one Buffer per chunk out (object mode, two chunks buffered). */
export function createChunkerStream(opts: ChunkerOptions): Transform {
  const chunker = new ContentChunker(opts);
  const out: Buffer[] = [];
  const flushTo = (stream: Transform): void => {
    for (const chunk of out) stream.push(chunk);
    out.length = 0;
  };
  return new Transform({
    readableObjectMode: true,
    readableHighWaterMark: 2,
    transform(piece: Buffer, _enc, cb: TransformCallback) {
      chunker.write(piece, out);
      flushTo(this);
      cb();
    },
    flush(cb: TransformCallback) {
      chunker.end(out);
      flushTo(this);
      cb();
    },
  });
}
