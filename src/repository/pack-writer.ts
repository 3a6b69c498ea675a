import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { Target } from '../targets/target.js';
import { BlobSealer, type PackedChunk } from './blob.js';
import { newPackKey, type RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import { ChunkIdSet } from './id-set.js';
import { MAX_PACK_ENTRIES, PackEntryList, packHeader, packTail } from './pack-format.js';

export interface PackWriterOptions {
  /** A pack is closed once it holds this many bytes (or would exceed it with the next blob). */
  packBytes?: number;
  /** zstd level of each chunk. */
  compressionLevel?: number;
}

export const DEFAULT_PACK_BYTES = 32 * 1024 * 1024;

/** A pack once committed under its final name, with what it holds. */
export interface WrittenPack {
  hash: string;
  size: number;
  entries: PackEntryList;
}

interface OpenPack {
  path: string;
  header: Buffer;
  blobKey: Buffer;
  stream: PassThrough;
  stored: Promise<unknown>;
  failure: { error?: unknown };
  hash: Hash;
  size: number;
  entries: PackEntryList;
}

/**
 * Writes chunks into packs through a Target: each pack is streamed to a pending name while it
 * fills (memory: the stream's buffer and one sealed chunk), and renamed to the SHA-256 of its
 * bytes once complete, so a pack under its final name is always whole, and never changes.
 */
export class PackWriter {
  private readonly sealer: BlobSealer;
  private readonly packBytes: number;
  private current: OpenPack | undefined;
  private readonly pendingIds = new ChunkIdSet();
  private written: WrittenPack[] = [];
  /** add() calls run one after another: a chunk is compressed into a scratch buffer shared by all. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly target: Target,
    private readonly layout: RepositoryLayout,
    private readonly keys: RepositoryKeys,
    opts: PackWriterOptions = {},
  ) {
    this.sealer = new BlobSealer(opts.compressionLevel ?? 1);
    this.packBytes = opts.packBytes ?? DEFAULT_PACK_BYTES;
  }

  /** True when this writer already took the chunk (in a pack not yet handed out by takeWritten). */
  has(chunkId: Buffer): boolean {
    return this.pendingIds.has(chunkId);
  }

  /**
   * Adds a chunk unless this writer already took it (callers dedup against the index); the bytes
   * it takes in its pack, 0 when it was not added. Calls may overlap (roles store at once): they
   * run one after another; the caller may go on before it is stored (the returned promise says when).
   */
  add(chunkId: Buffer, plaintext: Buffer): Promise<number> {
    if (this.has(chunkId)) return Promise.resolve(0);
    // Taken now, so the same chunk given again before this one is stored is not stored twice.
    this.pendingIds.add(chunkId);
    const added = this.queue.then(async () => this.store(chunkId, plaintext.length, this.sealer.pack(plaintext)));
    this.queue = added.then(
      () => undefined,
      () => undefined,
    );
    return added;
  }

  private async store(chunkId: Buffer, plaintextLength: number, packed: PackedChunk): Promise<number> {
    const length = packed.sealedLength;
    if (this.current && (this.current.size + length > this.packBytes || this.current.entries.length >= MAX_PACK_ENTRIES))
      await this.close();
    const pack = this.current ?? (await this.open());
    // A chunk compressed here lies in the sealer's scratch buffer: sealed before anything else compresses.
    const pieces = this.sealer.seal(pack.blobKey, chunkId, packed);
    pack.entries.push(chunkId, pack.size, length, plaintextLength);
    for (const piece of pieces) await this.put(pack, piece);
    return length;
  }

  /** Closes the open pack, if any, and returns every pack committed since the last call. */
  async flush(): Promise<WrittenPack[]> {
    await this.queue;
    if (this.current) await this.close();
    const written = this.written;
    this.written = [];
    for (const pack of written) this.forget(pack.entries);
    return written;
  }

  /** Drops the open pack (its pending file is deleted where possible; prune removes leftovers). */
  async abort(): Promise<void> {
    await this.queue;
    const pack = this.current;
    this.current = undefined;
    if (!pack) return;
    pack.stream.destroy();
    await pack.stored.catch(() => undefined);
    await this.target.delete(pack.path).catch(() => undefined);
  }

  private async open(): Promise<OpenPack> {
    const path = this.layout.pendingPackPath();
    const stream = new PassThrough({ highWaterMark: 1024 * 1024 });
    const failure: { error?: unknown } = {};
    const stored = this.target.write(path, stream, { atomic: false });
    stored.catch((error: unknown) => {
      failure.error = error;
      stream.destroy();
    });
    const { ephemeral, blobKey } = newPackKey(this.keys);
    const header = packHeader(ephemeral);
    const pack: OpenPack = {
      path,
      header,
      blobKey,
      stream,
      stored,
      failure,
      hash: createHash('sha256'),
      size: 0,
      entries: new PackEntryList(),
    };
    this.current = pack;
    await this.put(pack, header);
    return pack;
  }

  private async put(pack: OpenPack, piece: Buffer): Promise<void> {
    if (pack.failure.error) throw pack.failure.error;
    pack.hash.update(piece);
    pack.size += piece.length;
    if (!pack.stream.write(piece)) {
      await Promise.race([once(pack.stream, 'drain'), pack.stored.then(() => undefined)]).catch(() => undefined);
      if (pack.failure.error) throw pack.failure.error;
    }
  }

  private forget(entries: PackEntryList): void {
    for (let i = 0; i < entries.length; i++) this.pendingIds.delete(entries.chunkIdAt(i));
  }

  private async close(): Promise<void> {
    const pack = this.current!;
    this.current = undefined;
    try {
      await this.put(pack, packTail(this.keys.toc, pack.header, pack.entries));
      pack.stream.end();
      await pack.stored;
      const hash = pack.hash.digest('hex');
      const final = this.layout.packPath(hash);
      await this.target.rename(pack.path, final);
      this.written.push({ hash, size: pack.size, entries: pack.entries });
    } catch (error) {
      pack.stream.destroy();
      await this.target.delete(pack.path).catch(() => undefined);
      this.forget(pack.entries);
      throw error;
    }
  }
}
