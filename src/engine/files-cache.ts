import { hash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileWhole } from '../fs/durable-write.js';
import type { ArchiveMember } from '../providers/provider.js';
import { HEADER_FORMAT, HEADER_FORMAT_WITH_XATTRS } from '../providers/tar-header.js';
import type { ChunkRefs } from '../repository/chunk-refs.js';

/**
 * The files cache of a directory role (issue 19, point 4): what the last committed backup of this
 * machine stored for each regular file, so that the next one does not read a file that has not
 * changed. Kept in AZSBACKUP_HOME as `files-cache/<repository id>/<role>` (owner-only), one file per
 * role, written whole (durable-write.ts) and only after the backup that made it committed.
 *
 * A file is taken from the cache when its archive name, size, mtime, ctime, inode and device are
 * all as recorded, and so is its header (mode, owner, name, times as the archive writes them): any
 * write to the file changes its ctime, even one that puts the mtime back,
 * as restic's and borg's caches assume. The residual risk is theirs too: a file rewritten with the
 * same size within the file system's timestamp granularity of its previous ctime (nanoseconds on
 * ext4 and XFS, but 2 s on FAT, 1 s on some network mounts), or a clock set back so that the new
 * ctime equals the old one, is taken as unchanged. The engine also uses a cached file only when
 * every chunk the cache names is still in the repository's index (prune may have removed it).
 *
 * Format (all integers big-endian): "AZSFCACH", uint32 version 2, uint32 count, then per file:
 * uint16 name length, name, uint64 size, int64 mtimeNs, int64 ctimeNs, uint64 ino, uint64 dev,
 * 32 bytes of header, uint32 chunk count, per chunk 32 bytes id and uint32 length; then the
 * SHA-256 of everything before it. The 32 bytes of header are uint32 HEADER_FORMAT (tar-header.ts;
 * HEADER_FORMAT_WITH_XATTRS for a file with extended attributes),
 * st_mode, uid and gid, and 16 zero bytes: with the name, size and mtime of the record, all that
 * a regular file's header is made from, so the header is the same exactly when they are, and an
 * unchanged file's header need not be made at all (encoding and hashing it was a third of the walk
 * of an unchanged tree). Version 1 held the SHA-256 of the header bytes there; a version 1 cache
 * is still used (each header made and hashed), and the next one is written as version 2.
 * In memory: the file's bytes and a Map from name to the offset of its record, so 100,000 files
 * take the file (about 150 bytes a file of one chunk) and the Map's keys.
 */

/** Under AZSBACKUP_HOME. */
export const FILES_CACHE_FOLDER = 'files-cache';

const MAGIC = Buffer.from('AZSFCACH');
const VERSION = 2;
/** Version 1: the header as the SHA-256 of its bytes. */
const VERSION_HASHED_HEADERS = 1;
const ID_BYTES = 32;
const HASH_BYTES = 32;
/** Size, mtime, ctime, inode, device. */
const STAT_BYTES = 40;
/** What a record holds of the header. */
const HEADER_BYTES = 32;

export type CachedMember = Pick<ArchiveMember, 'name' | 'stat' | 'header'>;

/** The SHA-256 of a member's header bytes, as a version 1 cache records it. */
export function headerHash(header: Buffer): Buffer {
  return hash('sha256', header, 'buffer');
}

/** A record's stat and header as match() compares them and add() writes them (encodeRecord). */
const RECORD = Buffer.alloc(STAT_BYTES + HEADER_BYTES);
const RECORD_VIEW = new DataView(RECORD.buffer, RECORD.byteOffset, RECORD.byteLength);

/**
 * `member`'s stat and header into RECORD as a version 2 record holds them: size, mtime, ctime,
 * inode, device, 64 bits each (times signed), then HEADER_FORMAT, st_mode, uid and gid, 32 bits
 * each, and zeros; big-endian. Through a DataView: Buffer's writeBig*64BE take several BigInt
 * operations a field, which in a fresh process cost more than the walk's lstat.
 */
function encodeRecord(member: CachedMember): void {
  const { stat } = member;
  RECORD_VIEW.setUint32(0, Math.floor(stat.size / 0x1_0000_0000));
  RECORD_VIEW.setUint32(4, stat.size % 0x1_0000_0000);
  RECORD_VIEW.setBigInt64(8, stat.mtimeNs);
  RECORD_VIEW.setBigInt64(16, stat.ctimeNs);
  RECORD_VIEW.setBigUint64(24, stat.ino);
  RECORD_VIEW.setBigUint64(32, stat.dev);
  // A header with attributes is of another format: one cached before they were archived is stale.
  RECORD_VIEW.setUint32(40, stat.xattrs ? HEADER_FORMAT_WITH_XATTRS : HEADER_FORMAT);
  RECORD_VIEW.setUint32(44, stat.mode);
  RECORD_VIEW.setUint32(48, stat.uid);
  RECORD_VIEW.setUint32(52, stat.gid);
}

/** Where the cache of `role` in the repository `repositoryId` lies under `folder` (AZSBACKUP_HOME/files-cache). */
export function filesCachePath(folder: string, repositoryId: string, role: string): string {
  return path.join(folder, encodeURIComponent(repositoryId), encodeURIComponent(role));
}

export class FilesCache {
  private constructor(
    private readonly bytes: Buffer,
    private readonly records: Map<string, number>,
    private readonly version: number,
  ) {}

  get size(): number {
    return this.records.size;
  }

  /**
   * The cache at `file`: undefined when there is none, a note when it cannot be used (damaged,
   * truncated, unreadable, another version). Never throws.
   */
  static load(file: string): { cache?: FilesCache; note?: string } {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      return { note: `the files cache ${file} could not be read (${(e as Error).message}); every file is read` };
    }
    const parsed = parse(bytes);
    if (typeof parsed === 'number')
      return {
        note: `the files cache ${file} is of version ${parsed}, which this release does not read (a newer one wrote it), and was ignored; every file is read`,
      };
    if (!parsed) return { note: `the files cache ${file} is damaged or truncated and was ignored; every file is read` };
    return { cache: new FilesCache(bytes, parsed.records, parsed.version) };
  }

  /**
   * The chunks recorded for `member` if its name, stat and header are as recorded; undefined
   * otherwise. A view of the cache's bytes, without an object per chunk.
   */
  match(member: CachedMember): ChunkRefs | undefined {
    const at = this.records.get(member.name.toString('latin1'));
    if (at === undefined) return undefined;
    const b = this.bytes;
    // The stat and header as the record holds them: one comparison of 72 bytes.
    encodeRecord(member);
    if (this.version === VERSION_HASHED_HEADERS) RECORD.set(headerHash(member.header), STAT_BYTES);
    if (b.compare(RECORD, 0, STAT_BYTES + HEADER_BYTES, at, at + STAT_BYTES + HEADER_BYTES) !== 0) return undefined;
    const p = at + STAT_BYTES + HEADER_BYTES;
    return recordedChunks(b, p + 4, b.readUInt32BE(p));
  }
}

/** The `count` chunks recorded from `at` in `b`: per chunk, 32 bytes id and uint32 length. */
function recordedChunks(b: Buffer, at: number, count: number): ChunkRefs {
  const STRIDE = ID_BYTES + 4;
  return {
    length: count,
    idAt: (i) => b.subarray(at + i * STRIDE, at + i * STRIDE + ID_BYTES),
    lengthAt: (i) => b.readUInt32BE(at + i * STRIDE + ID_BYTES),
    copyIdTo: (i, target, to) => {
      b.copy(target, to, at + i * STRIDE, at + i * STRIDE + ID_BYTES);
    },
  };
}

/**
 * name → offset of the record after its name, and the version; the version alone when it is one
 * this release does not read (whole and hashed, so not damaged); undefined if anything does not hold.
 */
function parse(b: Buffer): { records: Map<string, number>; version: number } | number | undefined {
  if (b.length < MAGIC.length + 8 + HASH_BYTES || !b.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const body = b.length - HASH_BYTES;
  if (!hash('sha256', b.subarray(0, body), 'buffer').equals(b.subarray(body))) return undefined;
  const version = b.readUInt32BE(8);
  if (version !== VERSION && version !== VERSION_HASHED_HEADERS) return version;
  const count = b.readUInt32BE(12);
  const records = new Map<string, number>();
  let p = 16;
  for (let n = 0; n < count; n++) {
    if (p + 2 > body) return undefined;
    const nameLength = b.readUInt16BE(p);
    const at = p + 2 + nameLength;
    if (at + STAT_BYTES + HEADER_BYTES + 4 > body) return undefined;
    const chunks = b.readUInt32BE(at + STAT_BYTES + HEADER_BYTES);
    const end = at + STAT_BYTES + HEADER_BYTES + 4 + chunks * (ID_BYTES + 4);
    if (end > body) return undefined;
    records.set(b.toString('latin1', p + 2, at), at);
    p = end;
  }
  return p === body ? { records, version } : undefined;
}

/** The next cache, as the backup goes: one record per regular file stored. */
export class FilesCacheBuilder {
  private buf = Buffer.alloc(64 * 1024);
  private length = 16;
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(member: CachedMember, refs: ChunkRefs): void {
    const { name } = member;
    if (name.length > 0xffff) return;
    this.reserve(2 + name.length + STAT_BYTES + HEADER_BYTES + 4 + refs.length * (ID_BYTES + 4));
    const b = this.buf;
    let p = b.writeUInt16BE(name.length, this.length);
    p += name.copy(b, p);
    encodeRecord(member);
    b.set(RECORD, p);
    p += STAT_BYTES + HEADER_BYTES;
    p = b.writeUInt32BE(refs.length, p);
    for (let i = 0; i < refs.length; i++) {
      refs.copyIdTo(i, b, p);
      p = b.writeUInt32BE(refs.lengthAt(i), p + ID_BYTES);
    }
    this.length = p;
    this.count++;
  }

  /** The file's bytes. */
  toBuffer(): Buffer {
    // Its hash goes after it in the same memory: no copy of a cache of 26,000 files.
    this.reserve(HASH_BYTES);
    const body = this.buf.subarray(0, this.length);
    MAGIC.copy(body, 0);
    body.writeUInt32BE(VERSION, 8);
    body.writeUInt32BE(this.count, 12);
    hash('sha256', body, 'buffer').copy(this.buf, this.length);
    return this.buf.subarray(0, this.length + HASH_BYTES);
  }

  /** Written whole at `file` (owner-only, its folders made owner-only), replacing the previous cache. */
  save(file: string): void {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileWhole(file, this.toBuffer(), { mode: 0o600, replace: true, durable: false });
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const grown = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }
}
