import { Readable } from 'node:stream';
import type { Target } from '../targets/target.js';
import { ChunkWorkers, openChunk } from './chunk-workers.js';
import type { Catalog } from './catalog.js';
import { isAzsError } from '../errors.js';
import { packDamaged } from './errors.js';
import { packKeyOf, type RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import { ephemeralKeyOf, PACK_HEADER_BYTES } from './pack-format.js';

/**
 * A pack read forward from its start, once: a restore asks for blobs in its catalog's order, which
 * within one pack is mostly the order they were written in, so one stream per pack serves them all
 * and the bytes between them are skipped. Asked for a blob behind it, the caller opens a new one.
 */
class PackCursor {
  private readonly source: AsyncIterator<Buffer>;
  private held: Buffer = Buffer.alloc(0);
  /** Offset in the pack of held[0]. */
  private at = 0;
  blobKey?: Buffer;

  constructor(
    readonly pack: string,
    stream: Readable,
  ) {
    this.source = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  static async open(target: Target, layout: RepositoryLayout, keys: RepositoryKeys, pack: string): Promise<PackCursor> {
    let stream: Readable;
    try {
      stream = await target.read(layout.packPath(pack));
    } catch (e) {
      // A pack the backup needs and the share no longer has is damage to the backup, like a changed one.
      if (isAzsError(e) && e.errorId === 'TargetObjectNotFound') throw packDamaged(pack, 'it is missing from the share', e);
      throw e;
    }
    const cursor = new PackCursor(pack, stream);
    cursor.blobKey = packKeyOf(keys, ephemeralKeyOf(pack, await cursor.read(0, PACK_HEADER_BYTES)));
    return cursor;
  }

  /** True when a read at `offset` can still be served (it is not behind what was passed). */
  reaches(offset: number): boolean {
    return offset >= this.at;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < this.at) throw new RangeError(`pack ${this.pack}: offset ${offset} is behind the cursor (${this.at})`);
    while (this.at + this.held.length < offset + length) {
      const step = await this.source.next();
      if (step.done) throw packDamaged(this.pack, `it ends at byte ${this.at + this.held.length}, before the blob at ${offset}`);
      const piece = step.value;
      // Whole pieces before the offset are dropped at once, never copied.
      if (this.at + this.held.length + piece.length <= offset) {
        this.at += this.held.length + piece.length;
        this.held = Buffer.alloc(0);
        continue;
      }
      this.held = this.held.length ? Buffer.concat([this.held, piece]) : piece;
    }
    const from = offset - this.at;
    const blob = this.held.subarray(from, from + length);
    this.held = this.held.subarray(from + length);
    this.at = offset + length;
    return blob;
  }

  close(): void {
    void this.source.return?.();
  }
}

/** At most this many packs are open at once while a role is read. */
const OPEN_PACKS = 4;
/** Chunks being opened at once ahead of the one the reader is at. */
const OPENING_AHEAD = 8;

/**
 * The role stream a catalog describes, chunk by chunk in order; every chunk is authenticated as
 * its id (under its pack's key, then by its keyed hash) before it is passed on, so nothing a
 * provider receives is other than what was backed up.
 */
export function readCatalog(target: Target, layout: RepositoryLayout, keys: RepositoryKeys, catalog: Catalog): Readable {
  const open = new Map<string, PackCursor>();
  async function cursorFor(pack: string, offset: number): Promise<PackCursor> {
    const known = open.get(pack);
    if (known?.reaches(offset)) {
      open.delete(pack);
      open.set(pack, known); // most recently used last
      return known;
    }
    known?.close();
    open.delete(pack);
    if (open.size >= OPEN_PACKS) {
      const [oldest] = open.keys();
      open.get(oldest!)!.close();
      open.delete(oldest!);
    }
    const cursor = await PackCursor.open(target, layout, keys, pack);
    open.set(pack, cursor);
    return cursor;
  }
  // Blobs are opened on worker threads while the next ones are read: a few at once, yielded in order.
  const workers = ChunkWorkers.shared();
  async function* chunks(): AsyncGenerator<Buffer> {
    const opening: (Promise<Buffer> | Buffer)[] = [];
    try {
      for (const c of catalog.chunks) {
        const cursor = await cursorFor(c.pack, c.offset);
        const blob = await cursor.read(c.offset, c.length);
        const opened = openChunk(workers, keys, { pack: c.pack, blobKey: cursor.blobKey! }, c.chunkId, blob, c.plaintextLength);
        if (opened instanceof Promise) opened.catch(() => {}); // awaited in order below; never unhandled meanwhile
        opening.push(opened);
        if (opening.length >= OPENING_AHEAD) yield await opening.shift()!;
      }
      while (opening.length) yield await opening.shift()!;
    } finally {
      for (const cursor of open.values()) cursor.close();
    }
  }
  return Readable.from(chunks(), { objectMode: false, highWaterMark: 4 * 1024 * 1024 });
}
