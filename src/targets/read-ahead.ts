import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { SlabPool } from '../memory/slab-pool.js';
import type { RecyclingReadable } from '../memory/recycling-readable.js';

/**
 * A file as a stream that keeps several reads in flight. fs.ReadStream starts the next read only
 * once the previous one is done, so every piece waits one thread-pool round trip (and on a fresh
 * buffer, its page faults) while the consumer could have been decoding: decoding a role file, the
 * main thread sat idle for about a third of its time on that. Reads are issued at fixed offsets
 * and pushed in order; the stream owns the handle and closes it, and starts no read once destroyed.
 */

export interface ReadAheadOptions {
  /** Bytes per read. */
  pieceBytes: number;
  /** Reads in flight at most (the thread pool has four threads by default). */
  depth: number;
}

/** Where the pieces come from: a file, or a blob read by ranges. */
export interface PieceSource {
  /** Fills `buffer` with the `buffer.length` bytes at `position`, or rejects. */
  read(buffer: Buffer, position: number): Promise<Buffer>;
  /** Called once, after every read issued has settled. */
  close(): Promise<void>;
}

export function readAhead(handle: FileHandle, size: number, opts: ReadAheadOptions): RecyclingReadable {
  return readAheadFrom(
    { read: (buffer, position) => readExactly(handle, position, buffer.length, buffer), close: () => handle.close() },
    size,
    opts,
  );
}

export function readAheadFrom(source: PieceSource, size: number, opts: ReadAheadOptions): RecyclingReadable {
  let nextOffset = 0;
  // One piece per slab, so a piece handed back frees its slab for the next read; no bigger than the file.
  const slabBytes = Math.max(1, Math.min(opts.pieceBytes, size));
  // Files read one after another (a restore's packs) share the spare slabs of the full piece size.
  const pool = new SlabPool(slabBytes, slabBytes, slabBytes === opts.pieceBytes ? sparesOf(slabBytes) : undefined);
  const inFlight: Promise<Buffer>[] = [];
  let closed = false;
  const issue = (): void => {
    while (!closed && inFlight.length < opts.depth && nextOffset < size) {
      const length = Math.min(opts.pieceBytes, size - nextOffset);
      const at = nextOffset;
      nextOffset += length;
      const piece = source.read(pool.piece(length), at);
      // Seen when its turn comes; one that fails after the stream was destroyed is not an unhandled rejection.
      piece.catch(() => {});
      inFlight.push(piece);
    }
  };
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    // Reads still running must finish before the descriptor may be closed (and perhaps reused).
    await Promise.allSettled(inFlight);
    await source.close();
  };
  const stream = new Readable({
    highWaterMark: opts.pieceBytes,
    read() {
      issue();
      const next = inFlight.shift();
      if (!next) {
        this.push(null);
        return;
      }
      next.then(
        (piece) => {
          issue();
          this.push(piece);
        },
        (e: Error) => this.destroy(e),
      );
    },
    destroy(error, callback) {
      close().then(
        () => callback(error),
        (e: Error) => callback(error ?? e),
      );
    },
  });
  return Object.assign(stream, { recycle: (chunk: Buffer): void => pool.recycle(chunk) });
}

const spares = new Map<number, Buffer[]>();

function sparesOf(slabBytes: number): Buffer[] {
  let list = spares.get(slabBytes);
  if (!list) spares.set(slabBytes, (list = []));
  return list;
}

/** `length` bytes at `position`; a file that shrank while being read is an error, not a short piece. */
async function readExactly(handle: FileHandle, position: number, length: number, buffer: Buffer): Promise<Buffer> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buffer, got, length - got, position + got);
    if (bytesRead === 0)
      throw Object.assign(
        new Error(`the file ended at ${position + got} bytes while ${position + length} were expected: it shrank while it was read`),
        { code: 'ESHRANK' },
      );
    got += bytesRead;
  }
  return buffer;
}
