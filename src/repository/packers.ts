import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AzsError, type AzsErrorInit } from '../errors.js';
import { PackAssembler, type AssemblerSettings, type ClosedPack, type PackEvent } from './pack-assembler.js';

/**
 * Where chunks are named and sealed: a PackAssembler on a worker thread of its own, or inline
 * where there is no worker script (the sources run directly, as in unit tests) or none is wanted.
 * Both give the same results; the writer (pack-writer.ts) does not know which it has.
 *
 * Jobs and pack bytes lie in memory shared with the threads (PackerMemory), numbered slots made
 * once per backup: a message carries slot numbers and offsets, never buffers. Memory handed
 * between threads instead (transferred) arrives as a new ArrayBuffer each time, which V8 counts
 * as fresh external memory: on a 500 MB backup that alone set off two dozen full collections.
 */
export interface PackerMemory {
  /** Job memory, shared by every packer: a job lies at the start of one slot. */
  inputs: SharedArrayBuffer[];
  /** This packer's output memory: a store() lays its blobs in one slot. */
  outputs: SharedArrayBuffer[];
}

/** Pack bytes as the writer gets them: a view of an output slot, or memory of their own. */
export type PackBytes = { pack: number; data: Buffer; output?: number } | { pack: number; closed: ClosedPack };

export interface Packer {
  /** It answers requests now: a thread once its modules are loaded (it says so) or once it failed, an inline packer always. */
  readonly ready: boolean;
  /** The chunk ids (32 bytes each) of the job that lies in input slot `input` (`lengths` end to end). */
  identify(job: number, input: number, lengths: Uint32Array): Promise<Buffer>;
  /**
   * Seals the flagged chunks of an identified job, laying their blobs in output slot `output`
   * (-1: none is free; the packer finds memory of its own): the bytes each took, and the pack
   * bytes made. The job's input slot is free again once this settles.
   */
  store(job: number, take: Uint8Array, output: number): Promise<{ sealed: Uint32Array; events: PackBytes[] }>;
  /** Forgets an identified job none of whose chunks is to be stored (no reply: its input slot is free at once). */
  drop(job: number): void;
  /** Closes the open pack. */
  close(): Promise<PackBytes[]>;
  /** Drops the open pack and the jobs held. */
  abort(): Promise<void>;
  /** Ends the thread, if there is one. */
  dispose(): Promise<void>;
}

const viewsOf = (slots: SharedArrayBuffer[]): Buffer[] => slots.map((b) => Buffer.from(b));

export class InlinePacker implements Packer {
  readonly ready = true;
  private readonly assembler: PackAssembler;
  private readonly inputs: Buffer[];
  private readonly outputs: Buffer[];

  constructor(settings: AssemblerSettings, memory: PackerMemory, packNumbers?: { first: number; step: number }) {
    this.assembler = new PackAssembler(settings, packNumbers);
    this.inputs = viewsOf(memory.inputs);
    this.outputs = viewsOf(memory.outputs);
  }

  async identify(job: number, input: number, lengths: Uint32Array): Promise<Buffer> {
    return this.assembler.identify(job, this.inputs[input]!, lengths);
  }

  async store(job: number, take: Uint8Array, output: number): Promise<{ sealed: Uint32Array; events: PackBytes[] }> {
    const made: PackEvent[] = [];
    const { sealed } = this.assembler.store(job, take, this.outputs[output], made);
    return { sealed, events: made.map((e) => this.bytesOf(e, output)) };
  }

  drop(job: number): void {
    this.assembler.drop(job);
  }

  async close(): Promise<PackBytes[]> {
    const made: PackEvent[] = [];
    this.assembler.close(made);
    return made.map((e) => this.bytesOf(e, -1));
  }

  async abort(): Promise<void> {
    this.assembler.abort();
  }

  async dispose(): Promise<void> {}

  private bytesOf(e: PackEvent, output: number): PackBytes {
    if (!('data' in e)) return e;
    const data = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength);
    return output >= 0 && e.data.buffer === this.outputs[output]!.buffer ? { pack: e.pack, data, output } : { pack: e.pack, data };
  }
}

/** Pack bytes as they cross from a thread: where they lie in an output slot, or the bytes. */
export type WireEvent =
  | { pack: number; output: number; offset: number; length: number }
  | { pack: number; data: Uint8Array }
  | { pack: number; closed: ClosedPack };

/** A request to pack-worker.ts; each but 'drop' gets one PackerReply with its id. */
export type PackerRequest =
  | { op: 'identify'; id: number; job: number; input: number; lengths: Uint32Array }
  | { op: 'store'; id: number; job: number; take: Uint8Array; output: number }
  | { op: 'drop'; id: number; job: number }
  | { op: 'close'; id: number }
  | { op: 'abort'; id: number };

export interface PackerReply {
  id: number;
  /** Sent once, unasked, when the thread is ready for requests. */
  ready?: boolean;
  ids?: Uint8Array;
  sealed?: Uint32Array;
  events?: WireEvent[];
  error?: { message: string } & Partial<AzsErrorInit>;
}

export interface PackerWorkerData {
  settings: AssemblerSettings;
  packNumbers: { first: number; step: number };
  memory: PackerMemory;
}

const WORKER_SCRIPT = fileURLToPath(new URL('../repository/pack-worker.js', import.meta.url));

export class WorkerPacker implements Packer {
  /** Ready for requests, or failed (its requests are then refused at once). */
  ready = false;
  private readonly thread: Worker;
  private readonly outputs: Buffer[];
  private readonly pending = new Map<number, (reply: PackerReply) => void>();
  private next = 0;
  private failure: string | undefined;

  constructor(settings: AssemblerSettings, memory: PackerMemory, packNumbers: { first: number; step: number }, script = WORKER_SCRIPT) {
    const workerData: PackerWorkerData = { settings, packNumbers, memory };
    this.outputs = viewsOf(memory.outputs);
    // Its JavaScript allocates little (ids, messages): a young generation of 1 MiB semi-spaces
    // instead of the process's 4 keeps each thread's footprint a few MB smaller.
    this.thread = new Worker(script, { workerData, resourceLimits: { maxYoungGenerationSizeMb: 2 } });
    this.thread.on('message', (reply: PackerReply) => {
      if (reply.ready) {
        this.ready = true;
        return;
      }
      const settle = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.thread.unref();
      settle?.(reply);
    });
    this.thread.on('error', (error) => this.fail(error.message));
    this.thread.on('exit', (code) => this.fail(`it exited with code ${code}`));
    this.thread.unref();
  }

  async identify(job: number, input: number, lengths: Uint32Array): Promise<Buffer> {
    const reply = await this.request({ op: 'identify', id: 0, job, input, lengths });
    return asBuffer(reply.ids!);
  }

  async store(job: number, take: Uint8Array, output: number): Promise<{ sealed: Uint32Array; events: PackBytes[] }> {
    const reply = await this.request({ op: 'store', id: 0, job, take, output });
    return { sealed: reply.sealed!, events: reply.events!.map((e) => this.bytesOf(e)) };
  }

  drop(job: number): void {
    if (!this.failure) this.thread.postMessage({ op: 'drop', id: 0, job } satisfies PackerRequest);
  }

  async close(): Promise<PackBytes[]> {
    return (await this.request({ op: 'close', id: 0 })).events!.map((e) => this.bytesOf(e));
  }

  async abort(): Promise<void> {
    await this.request({ op: 'abort', id: 0 });
  }

  async dispose(): Promise<void> {
    this.failure ??= 'it was ended';
    await this.thread.terminate();
  }

  private bytesOf(e: WireEvent): PackBytes {
    if ('closed' in e) return e;
    if ('data' in e) return { pack: e.pack, data: asBuffer(e.data) };
    return { pack: e.pack, data: this.outputs[e.output]!.subarray(e.offset, e.offset + e.length), output: e.output };
  }

  private request(message: PackerRequest): Promise<PackerReply> {
    if (this.failure) return Promise.reject(workerFailed(this.failure));
    message.id = ++this.next;
    // A thread with work keeps the process alive; an idle one does not hold it open.
    if (this.pending.size === 0) this.thread.ref();
    return new Promise<PackerReply>((resolve) => {
      this.pending.set(message.id, resolve);
      this.thread.postMessage(message);
    }).then((reply) => {
      if (reply.error) throw new AzsError(reply.error.message, { errorId: 'PackWorkerFailed', category: 'NotSpecified', ...reply.error });
      return reply;
    });
  }

  private fail(why: string): void {
    this.failure ??= why;
    this.ready = true;
    for (const [id, settle] of this.pending) settle({ id, error: { message: workerFailed(why).message } });
    this.pending.clear();
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function workerFailed(why: string): AzsError {
  return new AzsError(`A backup worker thread failed: ${why}.`, {
    errorId: 'PackWorkerFailed',
    category: 'NotSpecified',
    recommendedAction: 'Run the backup again; if it fails the same way, set AZSBACKUP_PACK_WORKERS=0 to pack on the main thread.',
  });
}

/**
 * The packers of one backup: up to AZSBACKUP_PACK_WORKERS threads (2 by default: on the 2-core
 * build machine two threads naming, compressing and sealing beside the main thread's reading and
 * cutting use both cores), or one inline packer with 0 or where the worker script is not built.
 * The first thread starts at once; more() starts the next, up to the number wanted: a backup
 * that stores little (an incremental one, mostly) never pays for a thread it does not need.
 */
export class Packers {
  readonly all: Packer[] = [];
  private readonly wanted: number;
  private threads = 0;
  /** A thread could not be started: none is tried again. */
  private threadsRefused = false;

  constructor(
    private readonly settings: AssemblerSettings,
    private readonly memoryFor: (packer: number) => PackerMemory,
    wanted = defaultPackWorkers(),
    private readonly script = WORKER_SCRIPT,
  ) {
    this.wanted = wanted > 0 && existsSync(script) ? wanted : 0;
    if (this.wanted === 0) this.all.push(new InlinePacker(settings, memoryFor(0)));
    else if (!this.more()) this.all.push(new InlinePacker(settings, memoryFor(0), { first: 0, step: this.wanted }));
  }

  /** Threads started so far. */
  get threadCount(): number {
    return this.threads;
  }

  /** Threads this backup may start (AZSBACKUP_PACK_WORKERS; 0 where the worker script is missing). */
  get wantedThreads(): number {
    return this.wanted;
  }

  /** Threads that have loaded their modules (or failed). */
  get readyThreadCount(): number {
    return this.all.filter((_, p) => this.readyThread(p)).length;
  }

  /**
   * Starts another thread if fewer than wanted run; whether it did. Where no thread may be started
   * (a limit on processes: pids.max, ulimit -u count threads), none is tried again: the packers
   * already there do the work, or an inline one (the constructor).
   */
  more(): boolean {
    const i = this.threads;
    if (i >= this.wanted || this.threadsRefused) return false;
    try {
      this.all.push(new WorkerPacker(this.settings, this.memoryFor(this.all.length), { first: i, step: this.wanted }, this.script));
      this.threads++;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ERR_WORKER_INIT_FAILED') throw e;
      this.threadsRefused = true;
      return false;
    }
    return true;
  }

  /**
   * The main thread's own packer (its index in `all`), made on first need where there are threads:
   * PackWriter.choose gives it a job rather than leave the main thread waiting, while no thread is
   * ready or while an incremental backup's one thread is behind.
   * A thread takes 50-100 ms to load its modules, and an incremental backup's one thread, naming
   * every chunk of the changed files, is busier than the main thread that reads and cuts them.
   * Its packs are numbered apart from the threads' (-1, -2, ...).
   */
  mainThread(): number {
    let own = this.all.findIndex((packer) => packer instanceof InlinePacker);
    if (own < 0) {
      own = this.all.length;
      this.all.push(new InlinePacker(this.settings, this.memoryFor(own), { first: -1, step: -1 }));
    }
    return own;
  }

  /** Whether `all[p]` is a thread ready for a job (it has loaded its modules, or failed). */
  readyThread(p: number): boolean {
    const packer = this.all[p]!;
    return packer instanceof WorkerPacker && packer.ready;
  }
}

/** AZSBACKUP_PACK_WORKERS, else 2 where there are two cores or more (on one, a thread only adds its cost). */
function defaultPackWorkers(): number {
  const fallback = availableParallelism() > 1 ? 2 : 0;
  const given = process.env.AZSBACKUP_PACK_WORKERS;
  if (given === undefined || given === '') return fallback;
  const n = Number(given);
  return Number.isInteger(n) && n >= 0 && n <= 16 ? n : fallback;
}
