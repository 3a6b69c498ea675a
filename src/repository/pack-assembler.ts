import { createHash, type Hash } from 'node:crypto';
import { BlobSealer, blobRoom } from './blob.js';
import { chunkIdOf, CHUNK_ID_BYTES, newPackKey } from './keys.js';
import { MAX_PACK_ENTRIES, PackEntryList, packHeader, packTail } from './pack-format.js';

/**
 * The CPU side of adding chunks to a repository, with no I/O: it names chunks (their keyed hash)
 * and seals the ones it is told to store into packs of its own, giving out each pack's bytes as
 * they are made and, at the end, its SHA-256 and table of contents. It runs on a worker thread
 * (pack-worker.ts) or inline (packers.ts); the writer on the main thread decides which chunks are
 * new and puts the bytes on the share (pack-writer.ts).
 *
 * A job is a run of chunks laid end to end in one buffer, with their lengths: identify() names
 * them and keeps them; store() then seals those flagged, and forgets the job.
 */

export interface AssemblerSettings {
  chunkIdKey: Uint8Array;
  tocKey: Uint8Array;
  publicKey: Uint8Array;
  /** A pack is closed once it holds this many bytes (or would exceed it with the next blob). */
  packBytes: number;
  /** zstd level of each chunk. */
  level: number;
}

/** What a store() or close() made: pack bytes to append, in order, and packs complete. */
export type PackEvent = { pack: number; data: Uint8Array } | { pack: number; closed: ClosedPack };

export interface ClosedPack {
  hash: string;
  size: number;
  /** Its entries as its table of contents lays them out (PackEntryList.wrap): one buffer crosses threads at no cost. */
  entries: Uint8Array;
}

/** The memory store() needs to lay out the blobs of the chunks taken. */
function outputRoom(lengths: ArrayLike<number>, take: ArrayLike<number>): number {
  let room = 0;
  for (let i = 0; i < lengths.length; i++) if (take[i]) room += blobRoom(lengths[i]!);
  return room;
}

interface OpenPack {
  number: number;
  header: Buffer;
  blobKey: Buffer;
  hash: Hash;
  size: number;
  entries: PackEntryList;
}

interface HeldJob {
  data: Buffer;
  lengths: Uint32Array;
  ids: Buffer;
}

export class PackAssembler {
  private readonly chunkIdKey: Buffer;
  private readonly tocKey: Buffer;
  private readonly publicKey: Buffer;
  private readonly sealer: BlobSealer;
  private readonly jobs = new Map<number, HeldJob>();
  private current: OpenPack | undefined;
  private packs = 0;

  /** `firstPack` numbers this assembler's packs apart from another's (pack-writer.ts keeps one map). */
  constructor(
    private readonly settings: AssemblerSettings,
    private readonly packNumbers: { first: number; step: number } = { first: 0, step: 1 },
  ) {
    this.chunkIdKey = Buffer.from(settings.chunkIdKey);
    this.tocKey = Buffer.from(settings.tocKey);
    this.publicKey = Buffer.from(settings.publicKey);
    this.sealer = new BlobSealer(settings.level);
  }

  /** The chunks' ids, CHUNK_ID_BYTES each, in order; the job is kept for store(). */
  identify(job: number, data: Buffer, lengths: Uint32Array): Buffer {
    const ids = Buffer.allocUnsafeSlow(lengths.length * CHUNK_ID_BYTES);
    let at = 0;
    const key = { chunkId: this.chunkIdKey };
    for (let i = 0; i < lengths.length; i++) {
      chunkIdOf(key, data.subarray(at, at + lengths[i]!)).copy(ids, i * CHUNK_ID_BYTES);
      at += lengths[i]!;
    }
    this.jobs.set(job, { data, lengths, ids });
    return ids;
  }

  /**
   * Seals the job's chunks whose flag in `take` is 1 into packs, their blobs laid one after
   * another in `output` (or in memory of its own where `output` is too small): the bytes each
   * took (0 for those not taken) and the memory the events' bytes lie in. The job is forgotten:
   * its memory is the caller's again.
   */
  store(job: number, take: Uint8Array, output: Buffer | undefined, out: PackEvent[]): { sealed: Uint32Array; output?: Buffer } {
    const held = this.jobs.get(job);
    if (!held) throw new Error(`Job ${job} was not identified by this packer.`);
    this.jobs.delete(job);
    const { lengths, data } = held;
    const sealed = new Uint32Array(lengths.length);
    const room = outputRoom(lengths, take);
    if (room === 0) return { sealed };
    const into = output && output.length >= room ? output : Buffer.allocUnsafeSlow(room);
    let used = 0;
    let at = 0;
    for (let i = 0; i < lengths.length; i++) {
      const length = lengths[i]!;
      if (take[i]) {
        const id = held.ids.subarray(i * CHUNK_ID_BYTES, (i + 1) * CHUNK_ID_BYTES);
        const blob = into.subarray(used, used + blobRoom(length));
        sealed[i] = this.add(id, data.subarray(at, at + length), blob, out);
        used += sealed[i]!;
      }
      at += length;
    }
    return { sealed, output: into };
  }

  /** Closes the open pack, if any. */
  close(out: PackEvent[]): void {
    const pack = this.current;
    if (!pack) return;
    this.current = undefined;
    this.append(pack, packTail(this.tocKey, pack.header, pack.entries), out);
    out.push({ pack: pack.number, closed: { hash: pack.hash.digest('hex'), size: pack.size, entries: pack.entries.tocEntries() } });
  }

  /** Drops the open pack and every job held: what was given out of it is the writer's to delete. */
  /** Forgets a job none of whose chunks is to be stored. */
  drop(job: number): void {
    this.jobs.delete(job);
  }

  abort(): void {
    this.current = undefined;
    this.jobs.clear();
  }

  /** One chunk as a blob of its pack, sealed where it lies in `blob`; its length. */
  private add(chunkId: Buffer, plaintext: Buffer, blob: Buffer, out: PackEvent[]): number {
    const length = this.sealer.packInto(plaintext, blob);
    if (this.current && (this.current.size + length > this.settings.packBytes || this.current.entries.length >= MAX_PACK_ENTRIES))
      this.close(out);
    const pack = this.current ?? this.open(out);
    this.sealer.sealInPlace(pack.blobKey, chunkId, blob, length);
    pack.entries.push(chunkId, pack.size, length, plaintext.length);
    this.append(pack, blob.subarray(0, length), out);
    return length;
  }

  private open(out: PackEvent[]): OpenPack {
    const { ephemeral, blobKey } = newPackKey({ publicKey: this.publicKey });
    const header = packHeader(ephemeral);
    const number = this.packNumbers.first + this.packs++ * this.packNumbers.step;
    const pack: OpenPack = { number, header, blobKey, hash: createHash('sha256'), size: 0, entries: new PackEntryList() };
    this.current = pack;
    this.append(pack, header, out);
    return pack;
  }

  private append(pack: OpenPack, bytes: Buffer, out: PackEvent[]): void {
    pack.hash.update(bytes);
    pack.size += bytes.length;
    const last = out[out.length - 1];
    // Blobs laid one after another in the same output go out as one piece.
    if (
      last &&
      'data' in last &&
      last.pack === pack.number &&
      last.data.buffer === bytes.buffer &&
      last.data.byteOffset + last.data.byteLength === bytes.byteOffset
    )
      out[out.length - 1] = {
        pack: pack.number,
        data: new Uint8Array(bytes.buffer, last.data.byteOffset, last.data.byteLength + bytes.byteLength),
      };
    else out.push({ pack: pack.number, data: bytes });
  }
}
