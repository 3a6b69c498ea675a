import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { SpareBuffers } from '../memory/spare-buffers.js';
import type { Target } from '../targets/target.js';
import { CHUNK_ID_BYTES, type RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import { decodeEntries, type PackEvent } from './pack-assembler.js';
import type { PackEntry } from './pack-format.js';
import { newPackers, type Packer } from './packers.js';

export interface PackWriterOptions {
  /** A pack is closed once it holds this many bytes (or would exceed it with the next blob). */
  packBytes?: number;
  /** zstd level of each chunk. */
  compressionLevel?: number;
  /** Threads that name, compress and seal chunks (packers.ts); 0 packs inline. AZSBACKUP_PACK_WORKERS by default. */
  workers?: number;
  /** TEST ONLY: the worker script (the built one, where the sources run directly). */
  workerScript?: string;
}

export const DEFAULT_PACK_BYTES = 32 * 1024 * 1024;
const MAX_SPARE_JOBS = 8;

/** A pack once committed under its final name, with what it holds. */
export interface WrittenPack {
  hash: string;
  size: number;
  entries: PackEntry[];
}

/** A job's chunks as stored: their ids (32 bytes each, in order) and the bytes each took in a pack (0: stored before). */
export interface StoredJob {
  ids: Buffer;
  sealed: Uint32Array;
}

interface Upload {
  path: string;
  stream: PassThrough;
  stored: Promise<unknown>;
  failure: { error?: unknown };
}

/**
 * Stores runs of chunks ("jobs") through a Target. Each job goes to one of the packers (worker
 * threads, packers.ts) which names its chunks; here, on the main thread and one job at a time, the
 * chunks not stored yet are taken (so two roles or two jobs never store one chunk twice); the
 * packer seals those into a pack of its own, and its bytes are streamed here to a pending name
 * while the pack fills (memory: the stream's buffer), then renamed to the SHA-256 of its bytes
 * once complete, so a pack under its final name is always whole, and never changes.
 */
export class PackWriter {
  private readonly packers: Packer[];
  private readonly busy: number[];
  /** Per packer, the handling of its pack bytes, one reply after another. */
  private readonly io: Promise<void>[];
  private readonly pendingIds = new Set<string>();
  private readonly uploads = new Map<number, Upload>();
  private committing: Promise<void>[] = [];
  private written: WrittenPack[] = [];
  private jobs = 0;
  /** Memory for jobs, back from the packers: the same few buffers go round (docs/PERFORMANCE.md). */
  readonly spareJobs = new SpareBuffers(MAX_SPARE_JOBS);
  /**
   * Output memory of the packers, by its ArrayBuffer, until the share has taken every piece of it
   * (a target hands pieces back through the upload's recycle()): then it goes back to its packer.
   * Holding no buffer, so memory a target never hands back is left to the garbage collector.
   */
  private readonly outputs = new WeakMap<ArrayBufferLike, { packer: number; pieces: number }>();

  constructor(
    private readonly target: Target,
    private readonly layout: RepositoryLayout,
    keys: RepositoryKeys,
    opts: PackWriterOptions = {},
  ) {
    const settings = {
      chunkIdKey: keys.chunkId,
      tocKey: keys.toc,
      publicKey: keys.publicKey,
      packBytes: opts.packBytes ?? DEFAULT_PACK_BYTES,
      level: opts.compressionLevel ?? 1,
    };
    this.packers = newPackers(settings, opts.workers, opts.workerScript);
    this.busy = this.packers.map(() => 0);
    this.io = this.packers.map(() => Promise.resolve());
  }

  /** True when this writer already took the chunk (in a pack not yet handed out by flush). */
  has(chunkId: Buffer): boolean {
    return this.pendingIds.has(chunkId.toString('hex'));
  }

  /**
   * Stores a job: `data` holds its chunks end to end (`lengths`), and is handed over (do not use
   * it again); chunks for which `stored` says true, or that this writer took already, are not
   * stored again.
   */
  async store(data: Buffer, lengths: Uint32Array, stored: (id: Buffer) => boolean): Promise<StoredJob> {
    const p = this.busy.indexOf(Math.min(...this.busy));
    const packer = this.packers[p]!;
    this.busy[p]!++;
    try {
      const job = ++this.jobs;
      const ids = await packer.identify(job, data, lengths);
      const take = new Uint8Array(lengths.length);
      for (let i = 0; i < lengths.length; i++) {
        const id = ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
        if (stored(id)) continue;
        const hex = id.toString('hex');
        if (this.pendingIds.has(hex)) continue;
        // Taken now, so the same chunk in another job or role is not stored twice.
        this.pendingIds.add(hex);
        take[i] = 1;
      }
      const { sealed, events, data: returned, output } = await packer.store(job, take);
      this.spareJobs.giveBack(returned);
      if (output)
        this.outputs.set(output.buffer, { packer: p, pieces: events.filter((e) => 'data' in e && e.data.buffer === output.buffer).length });
      await this.handle(p, events);
      return { ids, sealed };
    } finally {
      this.busy[p]!--;
    }
  }

  /** Closes the open packs and returns every pack committed since the last call. */
  async flush(): Promise<WrittenPack[]> {
    await Promise.all(this.packers.map(async (packer, p) => this.handle(p, await packer.close())));
    const committing = this.committing;
    this.committing = [];
    await Promise.all(committing);
    const written = this.written;
    this.written = [];
    for (const pack of written) for (const e of pack.entries) this.pendingIds.delete(e.chunkId.toString('hex'));
    return written;
  }

  /** Drops the open packs (their pending files are deleted where possible; prune removes leftovers). */
  async abort(): Promise<void> {
    await Promise.all(this.packers.map((packer) => packer.abort().catch(() => undefined)));
    await Promise.allSettled(this.io);
    await Promise.allSettled(this.committing);
    this.committing = [];
    const uploads = [...this.uploads.values()];
    this.uploads.clear();
    for (const upload of uploads) {
      upload.stream.destroy();
      await upload.stored.catch(() => undefined);
      await this.target.delete(upload.path).catch(() => undefined);
    }
  }

  /** Ends the packers' threads. */
  async dispose(): Promise<void> {
    await Promise.all(this.packers.map((packer) => packer.dispose()));
  }

  /** A packer's pack bytes put on the share in the order it made them. */
  private handle(p: number, events: PackEvent[]): Promise<void> {
    const handled = this.io[p]!.then(async () => {
      for (const event of events) {
        if ('data' in event) await this.put(event.pack, Buffer.from(event.data.buffer, event.data.byteOffset, event.data.byteLength));
        else this.commitInBackground(event.pack, event.closed.hash, event.closed.size, decodeEntries(event.closed.entries));
      }
    });
    // A failure fails this reply's store(); the packer's later ones fail on the upload it left.
    this.io[p] = handled.catch(() => undefined);
    return handled;
  }

  private async put(pack: number, piece: Buffer): Promise<void> {
    const upload = this.uploads.get(pack) ?? this.open(pack);
    if (upload.failure.error) throw upload.failure.error;
    if (!upload.stream.write(piece)) {
      await Promise.race([once(upload.stream, 'drain'), upload.stored.then(() => undefined)]).catch(() => undefined);
      if (upload.failure.error) throw upload.failure.error;
    }
  }

  private open(pack: number): Upload {
    const path = this.layout.pendingPackPath();
    const stream = Object.assign(new PassThrough({ highWaterMark: 1024 * 1024 }), {
      recycle: (piece: Buffer): void => this.taken(piece),
    });
    const failure: { error?: unknown } = {};
    const stored = this.target.write(path, stream, { atomic: false });
    stored.catch((error: unknown) => {
      failure.error = error;
      stream.destroy();
    });
    const upload: Upload = { path, stream, stored, failure };
    this.uploads.set(pack, upload);
    return upload;
  }

  /** A piece of pack bytes the share has taken: its output memory goes back once all of it has. */
  private taken(piece: Buffer): void {
    const record = this.outputs.get(piece.buffer);
    if (!record || --record.pieces > 0) return;
    this.outputs.delete(piece.buffer);
    this.packers[record.packer]?.giveBack(Buffer.from(piece.buffer));
  }

  /**
   * A complete pack is flushed to disk and renamed while the next one fills: waiting for its
   * fsync (tens of ms per 32 MiB) held up every job behind it. flush() waits for them all.
   */
  private commitInBackground(pack: number, hash: string, size: number, entries: PackEntry[]): void {
    const committed = this.commitPack(pack, hash, size, entries);
    committed.catch(() => {}); // awaited by flush() or abort(); never unhandled meanwhile
    this.committing.push(committed);
  }

  private async commitPack(pack: number, hash: string, size: number, entries: PackEntry[]): Promise<void> {
    const upload = this.uploads.get(pack);
    if (!upload) throw new Error(`Pack ${pack} closed before any of its bytes came.`);
    this.uploads.delete(pack);
    try {
      upload.stream.end();
      await upload.stored;
      await this.target.rename(upload.path, this.layout.packPath(hash));
      this.written.push({ hash, size, entries });
    } catch (error) {
      upload.stream.destroy();
      await this.target.delete(upload.path).catch(() => undefined);
      for (const e of entries) this.pendingIds.delete(e.chunkId.toString('hex'));
      throw error;
    }
  }
}
