import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { Target } from '../targets/target.js';
import { CHUNK_ID_BYTES, type RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import { ChunkIdSet } from './id-set.js';
import { MAX_PACK_BYTES, MAX_PACK_TAIL_BYTES, PackEntryList } from './pack-format.js';
import { type PackBytes, Packers, type PackerMemory } from './packers.js';

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

/** A job's bytes: chunks laid end to end from the start of its memory. */
export const JOB_BYTES = 2 * 1024 * 1024;
/**
 * Jobs being named and stored at once, whatever the number of streams (each holds one slot). Four
 * keep two threads busy behind the main thread's cutting; six made a first backup of 500 MB no
 * faster and its 5 GiB peak RSS about 15 MB higher (docs/PERFORMANCE.md).
 */
const INPUT_SLOTS = 4;
/**
 * Per packer, stores whose blobs the share has not taken yet: one being written, one filling. A
 * store that finds none free seals into memory of its own (rare: 31 of 2,787 stores on the 5 GiB
 * corpus with three); three made no backup faster and the 5 GiB peak a few MB higher.
 */
const OUTPUT_SLOTS = 2;
/**
 * A job's blobs take a little more than its chunks (blobRoom): 29 bytes each, and zstd's bound
 * (1/256 more) where a chunk does not compress; 1024 small chunks need about 2 MiB + 100 KiB.
 * A store that needs more than a slot lays its blobs in memory of its own.
 */
const OUTPUT_SLACK = 256 * 1024;

/** A pack once committed under its final name, with what it holds. */
export interface WrittenPack {
  hash: string;
  size: number;
  entries: PackEntryList;
}

/** A job's chunks as stored: their ids (32 bytes each, in order) and the bytes each took in a pack (0: stored before). */
export interface StoredJob {
  ids: Buffer;
  sealed: Uint32Array;
}

/** Memory a job is laid in: write its chunks from the start of `data`, then store() it. */
export interface JobMemory {
  slot: number;
  data: Buffer;
}

interface Upload {
  path: string;
  stream: PassThrough;
  stored: Promise<unknown>;
  failure: { error?: unknown };
  /** Pieces written from output slots, until the share hands them back (or the upload ends). */
  lent: Map<Buffer, OutputSlot>;
}

interface OutputSlot {
  packer: number;
  slot: number;
  /** Pieces of it not yet taken by the share. */
  lent: number;
}

/**
 * Stores runs of chunks ("jobs") through a Target. Each job goes to one of the packers (worker
 * threads, packers.ts) which names its chunks; here, on the main thread and one job at a time, the
 * chunks not stored yet are taken (so two roles or two jobs never store one chunk twice); the
 * packer seals those into a pack of its own, and its bytes are streamed here to a pending name
 * while the pack fills (memory: the stream's buffer), then renamed to the SHA-256 of its bytes
 * once complete, so a pack under its final name is always whole, and never changes.
 *
 * Memory goes round: a job's slot is free again once its packer has stored it, an output slot
 * once the share has taken every piece of it (the upload's recycle(), or the end of the upload).
 */
export class PackWriter {
  private readonly packers: Packers;
  /** Per packer: jobs it holds, the handling of its pack bytes (one reply after another), its free output slots. */
  private readonly busy: number[] = [];
  private readonly io: Promise<void>[] = [];
  private readonly freeOutputs: number[][] = [];
  private readonly inputs: Buffer[];
  private readonly freeInputs: number[];
  private readonly waitingForInput: ((slot: number) => void)[] = [];
  private readonly pendingIds = new ChunkIdSet();
  private readonly uploads = new Map<number, Upload>();
  private committing: Promise<void>[] = [];
  /** Packs committed since the last flush, by their number (the order the packers made them). */
  private written: { number: number; pack: WrittenPack }[] = [];
  private jobs = 0;
  /** Bytes of the chunks named so far, and of those taken to be stored: whether this backup compresses. */
  private namedBytes = 0;
  private takenBytes = 0;
  /** Every chunk will be new (the repository's index is empty): a first backup compresses everything. */
  everythingNew = false;

  constructor(
    private readonly target: Target,
    private readonly layout: RepositoryLayout,
    keys: RepositoryKeys,
    opts: PackWriterOptions & { jobBytes?: number } = {},
  ) {
    const settings = {
      chunkIdKey: keys.chunkId,
      tocKey: keys.toc,
      publicKey: keys.publicKey,
      packBytes: opts.packBytes ?? DEFAULT_PACK_BYTES,
      level: opts.compressionLevel ?? 1,
    };
    // Readers refuse a file over MAX_PACK_BYTES in a pack's place unread: no pack may be larger.
    if (settings.packBytes > MAX_PACK_BYTES - MAX_PACK_TAIL_BYTES) throw new RangeError(`packs are at most ${MAX_PACK_BYTES} bytes`);
    const jobBytes = Math.max(JOB_BYTES, opts.jobBytes ?? 0);
    const inputs = Array.from({ length: INPUT_SLOTS }, () => new SharedArrayBuffer(jobBytes));
    const memoryFor = (): PackerMemory => ({
      inputs,
      outputs: Array.from({ length: OUTPUT_SLOTS }, () => new SharedArrayBuffer(jobBytes + OUTPUT_SLACK)),
    });
    this.packers = new Packers(settings, memoryFor, opts.workers, opts.workerScript);
    this.track();
    this.inputs = inputs.map((b) => Buffer.from(b));
    this.freeInputs = this.inputs.map((_, i) => i);
  }

  /** True when this writer already took the chunk (in a pack not yet handed out by flush). */
  has(chunkId: Buffer): boolean {
    return this.pendingIds.has(chunkId);
  }

  /** Memory for the next job; waits while every slot holds a job being stored. */
  async jobMemory(): Promise<JobMemory> {
    const slot = this.freeInputs.pop() ?? (await new Promise<number>((resolve) => this.waitingForInput.push(resolve)));
    return { slot, data: this.inputs[slot]! };
  }

  /** Gives back a job's memory unstored (its stream failed before sending it). */
  releaseJobMemory(job: JobMemory): void {
    this.freeInput(job.slot);
  }

  /**
   * Stores the job laid in `memory` (`lengths` end to end); chunks for which `stored` says true,
   * or that this writer took already, are not stored again. The memory is free again after.
   */
  async store(memory: JobMemory, lengths: Uint32Array, stored: (id: Buffer) => boolean): Promise<StoredJob> {
    const p = this.choose();
    const packer = this.packers.all[p]!;
    this.busy[p]!++;
    try {
      const job = ++this.jobs;
      const ids = await packer.identify(job, memory.slot, lengths);
      const take = new Uint8Array(lengths.length);
      for (let i = 0; i < lengths.length; i++) {
        this.namedBytes += lengths[i]!;
        const id = ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
        if (stored(id) || this.pendingIds.has(id)) continue;
        // Taken now, so the same chunk in another job or role is not stored twice.
        this.pendingIds.add(id);
        take[i] = 1;
        this.takenBytes += lengths[i]!;
      }
      if (!take.includes(1)) {
        // Nothing to store (most jobs of an incremental backup): the thread never reads the job's slot again.
        packer.drop(job);
        return { ids, sealed: new Uint32Array(lengths.length) };
      }
      const output = this.freeOutputs[p]!.pop() ?? -1;
      let events: PackBytes[];
      let sealed: Uint32Array;
      try {
        ({ sealed, events } = await packer.store(job, take, output));
      } catch (e) {
        if (output >= 0) this.freeOutputs[p]!.push(output);
        throw e;
      }
      const slot: OutputSlot | undefined = output >= 0 ? { packer: p, slot: output, lent: 0 } : undefined;
      if (slot) {
        slot.lent = events.filter((e) => 'output' in e && e.output === output).length;
        if (slot.lent === 0) this.freeOutputs[p]!.push(output);
      }
      await this.handle(p, events, slot);
      return { ids, sealed };
    } finally {
      this.busy[p]!--;
      this.freeInput(memory.slot);
    }
  }

  /**
   * The packer for the next job: the least busy thread ready for one; the main thread's own
   * (Packers.mainThread) where no thread is ready yet, or where fewer threads run than may (an
   * incremental backup's one), each has a job queued behind the one it works on and no job memory
   * is left, so that the main thread would otherwise wait; always the main thread's where there is
   * no thread. With every thread running, the threads and the main thread keep both cores busy
   * already, and the main thread's packing only cost memory (12 MiB more peak RSS on 5 GiB).
   */
  private choose(): number {
    const threads = this.packers.all.map((_, p) => p).filter((p) => this.packers.readyThread(p));
    const least = threads.length > 0 ? Math.min(...threads.map((p) => this.busy[p]!)) : Number.POSITIVE_INFINITY;
    // Another thread pays for itself where the backup is compressing (a thread names chunks three
    // times as fast as it compresses them). An incremental backup names far more than it stores;
    // the second thread its first queue used to start, behind the first thread's start-up, cost
    // the main thread's core that start-up. Jobs go to a new thread once it is ready.
    const compressing = this.everythingNew || (this.namedBytes > 0 && this.takenBytes * 2 >= this.namedBytes);
    if (least >= 2 && compressing && this.packers.more()) this.track();
    const threadsBehind = least >= 2 && this.freeInputs.length === 0 && threads.length < this.packers.wantedThreads;
    if (threads.length > 0 && !threadsBehind) return threads.find((p) => this.busy[p] === least)!;
    const own = this.packers.mainThread();
    this.track();
    return own;
  }

  /** Closes the open packs and returns every pack committed since the last call. */
  async flush(): Promise<WrittenPack[]> {
    await Promise.all(this.packers.all.map(async (packer, p) => this.handle(p, await packer.close(), undefined)));
    const committing = this.committing;
    this.committing = [];
    await Promise.all(committing);
    const written = this.written.sort((a, b) => a.number - b.number).map((w) => w.pack);
    this.written = [];
    for (const pack of written) this.forget(pack.entries);
    return written;
  }

  /**
   * Drops the open packs and the packs completed since the last flush, deleting them where the
   * share lets it (prune removes what is left after a day). No index file names a pack before
   * flush() hands it out, so no backup, of this machine or another, can have deduplicated against
   * one: kept, it would only hold the room a failed backup took (the share that filled up stays
   * full) until prune's grace is over.
   */
  async abort(): Promise<void> {
    await Promise.all(this.packers.all.map((packer) => packer.abort().catch(() => undefined)));
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
    const written = this.written;
    this.written = [];
    for (const { pack } of written) {
      this.forget(pack.entries);
      await this.target.delete(this.layout.packPath(pack.hash)).catch(() => undefined);
    }
  }

  /** Ends the packers' threads. */
  async dispose(): Promise<void> {
    await Promise.all(this.packers.all.map((packer) => packer.dispose()));
  }

  /** Packing threads started so far, and those of them ready for jobs. */
  get threadCount(): number {
    return this.packers.threadCount;
  }

  get readyThreadCount(): number {
    return this.packers.readyThreadCount;
  }

  private forget(entries: PackEntryList): void {
    for (let i = 0; i < entries.length; i++) this.pendingIds.delete(entries.chunkIdAt(i));
  }

  /** Bookkeeping for the packers started since the last call; the busy count of the newest (0). */
  private track(): number {
    while (this.busy.length < this.packers.all.length) {
      this.busy.push(0);
      this.io.push(Promise.resolve());
      this.freeOutputs.push(Array.from({ length: OUTPUT_SLOTS }, (_, i) => i));
    }
    return 0;
  }

  private freeInput(slot: number): void {
    const waiting = this.waitingForInput.shift();
    if (waiting) waiting(slot);
    else this.freeInputs.push(slot);
  }

  /** A packer's pack bytes put on the share in the order it made them. */
  private handle(p: number, events: PackBytes[], slot: OutputSlot | undefined): Promise<void> {
    const handled = this.io[p]!.then(async () => {
      for (const event of events) {
        if ('data' in event) await this.put(event.pack, event.data, 'output' in event ? slot : undefined);
        else
          this.commitInBackground(
            event.pack,
            event.closed.hash,
            event.closed.size,
            PackEntryList.wrap(Buffer.from(event.closed.entries.buffer, event.closed.entries.byteOffset, event.closed.entries.byteLength)),
          );
      }
    });
    // A failure fails this reply's store(); the packer's later ones fail on the upload it left.
    this.io[p] = handled.catch(() => undefined);
    return handled;
  }

  private async put(pack: number, piece: Buffer, slot: OutputSlot | undefined): Promise<void> {
    const upload = this.uploads.get(pack) ?? this.open(pack);
    if (slot) upload.lent.set(piece, slot);
    if (upload.failure.error) throw upload.failure.error;
    if (!upload.stream.write(piece)) {
      await Promise.race([once(upload.stream, 'drain'), upload.stored.then(() => undefined)]).catch(() => undefined);
      if (upload.failure.error) throw upload.failure.error;
    }
  }

  private open(pack: number): Upload {
    const path = this.layout.pendingPackPath();
    const lent = new Map<Buffer, OutputSlot>();
    const stream = Object.assign(new PassThrough({ highWaterMark: 1024 * 1024 }), {
      recycle: (piece: Buffer): void => this.taken(lent, piece),
    });
    const failure: { error?: unknown } = {};
    const stored = this.target.write(path, stream, { atomic: false });
    stored.catch((error: unknown) => {
      failure.error = error;
      stream.destroy();
    });
    // However the share went, nothing reads the pieces any more once the upload has ended.
    const ended = (): void => {
      for (const piece of [...lent.keys()]) this.taken(lent, piece);
    };
    stored.then(ended, ended);
    const upload: Upload = { path, stream, stored, failure, lent };
    this.uploads.set(pack, upload);
    return upload;
  }

  /** A piece of an output slot the share has taken: the slot is free again once all of its pieces are. */
  private taken(lent: Map<Buffer, OutputSlot>, piece: Buffer): void {
    const slot = lent.get(piece);
    if (!slot) return;
    lent.delete(piece);
    if (--slot.lent === 0) this.freeOutputs[slot.packer]!.push(slot.slot);
  }

  /**
   * A complete pack is flushed to disk and renamed while the next one fills: waiting for its
   * fsync (tens of ms per 32 MiB) held up every job behind it. flush() waits for them all.
   */
  private commitInBackground(pack: number, hash: string, size: number, entries: PackEntryList): void {
    const committed = this.commitPack(pack, hash, size, entries);
    committed.catch(() => {}); // awaited by flush() or abort(); never unhandled meanwhile
    this.committing.push(committed);
  }

  private async commitPack(pack: number, hash: string, size: number, entries: PackEntryList): Promise<void> {
    const upload = this.uploads.get(pack);
    if (!upload) throw new Error(`Pack ${pack} closed before any of its bytes came.`);
    this.uploads.delete(pack);
    try {
      upload.stream.end();
      await upload.stored;
      await this.target.rename(upload.path, this.layout.packPath(hash));
      this.written.push({ number: pack, pack: { hash, size, entries } });
    } catch (error) {
      upload.stream.destroy();
      await this.target.delete(upload.path).catch(() => undefined);
      this.forget(entries);
      throw error;
    }
  }
}
