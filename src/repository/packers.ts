import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AzsError, type AzsErrorInit } from '../errors.js';
import { PackAssembler, type AssemblerSettings, type PackEvent } from './pack-assembler.js';

/**
 * Where chunks are named and sealed: a PackAssembler on a worker thread of its own, or inline
 * where there is no worker script (the sources run directly, as in unit tests) or none is wanted.
 * Both give the same results; the writer (pack-writer.ts) does not know which it has.
 */
export interface Packer {
  /** The job's chunk ids, 32 bytes each; `data` is handed over (detached when it goes to a thread). */
  identify(job: number, data: Buffer, lengths: Uint32Array): Promise<Buffer>;
  /**
   * Seals the flagged chunks of an identified job: the bytes each took, the pack bytes made, the
   * job's memory back, and the memory the pack bytes lie in (give it back once written).
   */
  store(job: number, take: Uint8Array): Promise<StoredJobReply>;
  /** Output memory of a store() whose bytes are written: it may be written into again. */
  giveBack(output: Buffer): void;
  /** Closes the open pack. */
  close(): Promise<PackEvent[]>;
  /** Drops the open pack and the jobs held. */
  abort(): Promise<void>;
  /** Ends the thread, if there is one. */
  dispose(): Promise<void>;
}

export interface StoredJobReply {
  sealed: Uint32Array;
  events: PackEvent[];
  data: Buffer;
  output?: Buffer;
}

export class InlinePacker implements Packer {
  private readonly assembler: PackAssembler;

  constructor(settings: AssemblerSettings, packNumbers?: { first: number; step: number }) {
    this.assembler = new PackAssembler(settings, packNumbers);
  }

  async identify(job: number, data: Buffer, lengths: Uint32Array): Promise<Buffer> {
    return this.assembler.identify(job, data, lengths);
  }

  async store(job: number, take: Uint8Array): Promise<StoredJobReply> {
    const events: PackEvent[] = [];
    return { ...this.assembler.store(job, take, events), events };
  }

  giveBack(output: Buffer): void {
    this.assembler.giveBack(output);
  }

  async close(): Promise<PackEvent[]> {
    const events: PackEvent[] = [];
    this.assembler.close(events);
    return events;
  }

  async abort(): Promise<void> {
    this.assembler.abort();
  }

  async dispose(): Promise<void> {}
}

/** A request to pack-worker.ts; every one but 'drop' gets one PackerReply with its id. */
export type PackerRequest =
  | { op: 'identify'; id: number; job: number; data: Uint8Array; lengths: Uint32Array }
  | { op: 'store'; id: number; job: number; take: Uint8Array; spare: Uint8Array[] }
  | { op: 'close'; id: number }
  | { op: 'abort'; id: number };

export interface PackerReply {
  id: number;
  ids?: Uint8Array;
  sealed?: Uint32Array;
  events?: PackEvent[];
  data?: Uint8Array;
  output?: Uint8Array;
  error?: { message: string } & Partial<AzsErrorInit>;
}

export interface PackerWorkerData {
  settings: AssemblerSettings;
  packNumbers: { first: number; step: number };
}

const WORKER_SCRIPT = fileURLToPath(new URL('../repository/pack-worker.js', import.meta.url));

/** Whether worker threads can be had here: the built worker script is present. */
export function packWorkersAvailable(script = WORKER_SCRIPT): boolean {
  return existsSync(script);
}

export class WorkerPacker implements Packer {
  private readonly thread: Worker;
  private readonly pending = new Map<number, (reply: PackerReply) => void>();
  private next = 0;
  private failure: string | undefined;
  /** Output memory written out, to go back to the thread with the next store(). */
  private spare: Buffer[] = [];

  constructor(settings: AssemblerSettings, packNumbers: { first: number; step: number }, script = WORKER_SCRIPT) {
    const workerData: PackerWorkerData = { settings, packNumbers };
    this.thread = new Worker(script, { workerData });
    this.thread.on('message', (reply: PackerReply) => {
      const settle = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.thread.unref();
      settle?.(reply);
    });
    this.thread.on('error', (error) => this.fail(error.message));
    this.thread.on('exit', (code) => this.fail(`it exited with code ${code}`));
    this.thread.unref();
  }

  async identify(job: number, data: Buffer, lengths: Uint32Array): Promise<Buffer> {
    // The lengths are copied: the caller goes on reading them.
    const transfer = [data.buffer] as ArrayBuffer[];
    const reply = await this.request({ op: 'identify', id: 0, job, data, lengths }, transfer);
    return asBuffer(reply.ids!);
  }

  async store(job: number, take: Uint8Array): Promise<StoredJobReply> {
    const spare = this.spare.splice(0);
    const reply = await this.request(
      { op: 'store', id: 0, job, take, spare },
      spare.map((b) => b.buffer as ArrayBuffer),
    );
    const output = reply.output && asBuffer(reply.output);
    return { sealed: reply.sealed!, events: reply.events!, data: asBuffer(reply.data!), ...(output ? { output } : {}) };
  }

  giveBack(output: Buffer): void {
    this.spare.push(output);
  }

  async close(): Promise<PackEvent[]> {
    return (await this.request({ op: 'close', id: 0 })).events!;
  }

  async abort(): Promise<void> {
    await this.request({ op: 'abort', id: 0 });
  }

  async dispose(): Promise<void> {
    this.failure ??= 'it was ended';
    await this.thread.terminate();
  }

  private request(message: PackerRequest, transfer: ArrayBuffer[] = []): Promise<PackerReply> {
    if (this.failure) return Promise.reject(workerFailed(this.failure));
    message.id = ++this.next;
    // A thread with work keeps the process alive; an idle one does not hold it open.
    if (this.pending.size === 0) this.thread.ref();
    return new Promise<PackerReply>((resolve) => {
      this.pending.set(message.id, resolve);
      this.thread.postMessage(message, transfer);
    }).then((reply) => {
      if (reply.error) throw new AzsError(reply.error.message, { errorId: 'PackWorkerFailed', category: 'NotSpecified', ...reply.error });
      return reply;
    });
  }

  private fail(why: string): void {
    this.failure ??= why;
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
 * The packers of one backup: AZSBACKUP_PACK_WORKERS threads (2 by default: on the 2-core build
 * machine two threads naming, compressing and sealing beside the main thread's reading and
 * cutting use both cores), or one inline packer with 0 or where the worker script is not built.
 */
export function newPackers(settings: AssemblerSettings, wanted = defaultPackWorkers(), script = WORKER_SCRIPT): Packer[] {
  if (wanted <= 0 || !packWorkersAvailable(script)) return [new InlinePacker(settings)];
  return Array.from({ length: wanted }, (_, i) => new WorkerPacker(settings, { first: i, step: wanted }, script));
}

function defaultPackWorkers(): number {
  const given = process.env.AZSBACKUP_PACK_WORKERS;
  if (given === undefined || given === '') return 2;
  const n = Number(given);
  return Number.isInteger(n) && n >= 0 && n <= 16 ? n : 2;
}
