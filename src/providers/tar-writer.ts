import {
  appendFileSync,
  type BigIntStats,
  close,
  closeSync,
  constants as fsConstants,
  existsSync,
  fstatSync,
  lstatSync,
  openSync,
  read,
  readdirSync,
  readlinkSync,
  readSync,
} from 'node:fs';
import { Readable } from 'node:stream';
import { getSystemErrorMap } from 'node:util';
import type { RecyclingReadable } from '../memory/recycling-readable.js';
import { SlabPool } from '../memory/slab-pool.js';
import { type ListedStat, readFolder, readXattrs, writeBackPages } from '../native/folder-stat.js';
import { encodeHeader, endOfArchive, paddingOf, type TypeFlag, type Xattr } from './tar-header.js';
import { MAX_EXTENDED_BYTES } from './tar-scanner.js';

/**
 * A folder tree as a POSIX pax tar stream, written here rather than by GNU tar -c so that a backup
 * can tell, entry by entry, what it is about to store (the files cache of issue 19 skips reading
 * a file whose header and stat it has seen before).
 *
 * tarEntries() walks the tree and yields one entry at a time, each with its header bytes already
 * made and its data not yet read; tarStream() turns entries into the archive (header, data and its
 * padding, and two zero blocks at the end). The order is fixed: names sorted bytewise within a
 * folder, a folder before what it holds, the root first as "./"; names are "./rel" ("./rel/" for a
 * folder), as `tar -C root -cf - .` writes them. An unchanged tree therefore gives the same bytes.
 *
 * What is archived, as GNU tar does it: regular files, folders, symbolic links (never followed),
 * a second name of an inode already archived as a hard link to the first, FIFOs and devices
 * (the restore drops FIFOs and refuses devices); sockets are left out.
 *
 * A file, or a folder, that changes while it is read (size, mtime or ctime differ between the walk
 * and the end of its reading, or it shrinks under the read) or disappears before it is read, fails
 * the stream with a SourceChangedError: the archive would hold something no one ever saw whole.
 *
 * Paths are opened below a handle on their folder (/proc/self/fd/N/name, the openat() of Linux),
 * so a folder replaced by a symbolic link during the walk is never followed.
 */

/** An entry's lstat as archived (ListedStat, less the device number of a device file). */
export type EntryStat = Omit<ListedStat, 'rdev'>;

/** What the walk keeps of an lstat: the entry's stat and st_rdev (a device's numbers). */
type WalkStat = ListedStat;

export type EntryKind = 'file' | 'directory' | 'symlink' | 'hardlink' | 'fifo' | 'character-device' | 'block-device';

export interface TarWriterEntry {
  /** Relative to the root, '' for the root itself; UTF-8 (a name that is not is shown with U+FFFD). */
  path: string;
  /** The name in the archive, as bytes: "./", "./conf/", "./conf/app.conf". */
  name: Buffer;
  kind: EntryKind;
  stat: EntryStat;
  /** A symbolic link's target, or the archive name of the entry a hard link points to. */
  linkTarget?: Buffer;
  /**
   * The pax extended header (when one is needed) and the ustar header, exactly as written; made
   * from the entry's name, kind, stat and link target when first asked for.
   */
  readonly header: Buffer;
  /**
   * Regular files only: the contents, then `padding` zero bytes. Call it, and read the stream to
   * its end, before asking for the next entry. A consumer that already has this entry's bytes may
   * skip it. See MemberData for the two forms.
   */
  data?: () => MemberData;
  /** Zero bytes after the data, to a multiple of 512. */
  padding: number;
  /**
   * Regular files, once data() opened them: whether their dirty pages were handed to writeback
   * before the first byte was read (writeBackPages), so a later write through a mapping moves the ctime.
   */
  readonly pagesWrittenBack?: boolean;
}

/**
 * A regular file's contents and padding: a file of at most SMALL_FILE bytes is read when asked
 * for and comes whole, as one piece of the pool (data() throws what reading it met); a larger one
 * as a stream of pieces read ahead. Taking a small file's piece as it is, not through a stream's
 * machinery, matters: the stream cost more than reading the file.
 */
export type MemberData = Buffer | Readable;

/** A file or folder changed or disappeared while the tree was read. */
export class SourceChangedError extends Error {
  override readonly name = 'SourceChangedError';
  constructor(
    /** Relative to the root. */
    readonly path: string,
    /** GNU tar's words: "file changed as we read it", "file removed before we read it", "File shrank by N bytes". */
    readonly reason: string,
  ) {
    super(`${path === '' ? '.' : path}: ${reason}`);
  }
}

/**
 * A file whose extended attributes no archive entry a restore reads can hold (tmpfs and XFS take
 * far more than ext4's few KiB): refused rather than stored in a backup no restore could read.
 */
export class SourceAttributesTooLarge extends Error {
  override readonly name = 'SourceAttributesTooLarge';
  constructor(
    /** Relative to the root. */
    readonly path: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`${path}: ${bytes} bytes of extended attributes, more than the ${limit} an archive entry holds`);
  }
}

/** A file or folder could not be read (permissions, I/O error); `code` is the system's. */
export class SourceReadError extends Error {
  override readonly name = 'SourceReadError';
  readonly code: string | undefined;
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`${path === '' ? '.' : path}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.code = (cause as NodeJS.ErrnoException)?.code;
  }
}

/** Bytes per read of a file, and per slab of the pool the reads land in. */
const PIECE = 1 << 20;
/** Reads of one file in flight at once. */
const DEPTH = 2;
/** Whether a folder can be reached through its open handle (Linux). */
const PROC_FD = existsSync('/proc/self/fd');
const SLASH = Buffer.from('/');
const DOT_SLASH = Buffer.from('./');

/** The memory file data is read into; hand a chunk back with recycle() once done with it. */
export function tarPool(): SlabPool {
  return new SlabPool(PIECE, 4096);
}

export interface TarEntriesOptions {
  /** Where file data is read into; a new pool when not given. */
  pool?: SlabPool;
}

/** The entries of the tree at `root` (a folder, not followed if it is a symbolic link), in archive order. */
export async function* tarEntries(root: string, opts: TarEntriesOptions = {}): AsyncGenerator<TarWriterEntry, void, undefined> {
  yield* walkTree(root, opts);
}

/**
 * tarEntries() as a synchronous generator: every call of the walk is synchronous (see SMALL_FILE),
 * and a consumer that iterates it in a loop of its own pays no promise per entry and per folder
 * level, as nested async generators did (a tenth of the walk of an unchanged tree).
 */
export function* walkTree(root: string, opts: TarEntriesOptions = {}): Generator<TarWriterEntry, void, undefined> {
  const walker = new Walker(opts.pool ?? tarPool());
  const rootPath = Buffer.from(root);
  const st = walker.lstat(rootPath, EMPTY);
  if ((st.mode & S_IFMT) !== S_IFDIR) throw new SourceReadError('', Object.assign(new Error('not a folder'), { code: 'ENOTDIR' }));
  // The root's attributes (a default ACL on the role's folder, say): the listings give those of what it holds.
  const rootXattrs = attempt('', () => readXattrs(root));
  if (rootXattrs) st.xattrs = rootXattrs;
  yield* walker.folder(DOT_SLASH, rootPath, st);
}

export interface TarStreamOptions {
  /** The pool tarEntries() reads into: the stream then takes its chunks back (recycle). */
  pool?: SlabPool;
  highWaterMark?: number;
}

/**
 * The archive of `entries`: each header, then the data and padding of each regular file, then two
 * zero blocks. With backpressure: an entry is asked for, and a file read, only as fast as the
 * stream is read. Destroying the stream ends the walk and closes what it had open.
 */
export function tarStream(entries: AsyncIterable<TarWriterEntry>, opts: TarStreamOptions = {}): RecyclingReadable {
  const iterator = entries[Symbol.asyncIterator]();
  let wake: (() => void) | undefined;
  let current: Readable | undefined;
  let stopped = false;
  const out = new Readable({
    highWaterMark: opts.highWaterMark ?? PIECE,
    read() {
      const w = wake;
      wake = undefined;
      w?.();
    },
    destroy(error, callback) {
      stopped = true;
      current?.destroy();
      wake?.();
      Promise.resolve(iterator.return?.())
        .catch(() => undefined)
        .then(() => callback(error));
    },
  });
  const put = async (chunk: Buffer): Promise<void> => {
    if (out.push(chunk) || stopped) return;
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  };
  const pump = async (): Promise<void> => {
    for (;;) {
      const next = await iterator.next();
      if (stopped) return;
      if (next.done) break;
      await put(next.value.header);
      if (!next.value.data) continue;
      const data = next.value.data();
      if (Buffer.isBuffer(data)) {
        await put(data);
        continue;
      }
      current = data;
      for await (const chunk of current) {
        if (stopped) return;
        await put(chunk as Buffer);
      }
      current = undefined;
    }
    if (stopped) return;
    out.push(endOfArchive());
    out.push(null);
  };
  pump().catch((e: unknown) => {
    if (!stopped) out.destroy(e as Error);
  });
  const pool = opts.pool;
  return Object.assign(out, { recycle: (chunk: Buffer): void => pool?.recycle(chunk) });
}

/** tarStream(tarEntries(root)), reading into one pool it takes chunks back into. */
export function directoryTar(root: string): RecyclingReadable {
  const pool = tarPool();
  return tarStream(tarEntries(root, { pool }), { pool });
}

/** An lstat or fstat as the walk keeps it. */
function walkStatOf(st: BigIntStats): WalkStat {
  return {
    size: Number(st.size),
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    nlink: Number(st.nlink),
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    ino: st.ino,
    dev: st.dev,
    rdev: st.rdev,
  };
}

/** Same inode, size and times: nothing was written to it, renamed over it or changed in its metadata. */
function unchanged(a: WalkStat, b: BigIntStats): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === Number(b.size) && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

const CHANGED = 'file changed as we read it';
const REMOVED = 'file removed before we read it';

/** An error of the system about `rel` as the walk reports it. */
function sourceError(rel: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (e instanceof SourceChangedError || e instanceof SourceReadError) return e;
  if (code === 'ENOENT') return new SourceChangedError(rel, REMOVED);
  // A symbolic link, or something that is no folder, where the walk saw a folder or a file.
  if (code === 'ELOOP' || code === 'ENOTDIR') return new SourceChangedError(rel, CHANGED);
  return new SourceReadError(rel, e);
}

type LeafKind = { kind: Exclude<EntryKind, 'hardlink' | 'directory'>; type: TypeFlag };
const FILE: LeafKind = { kind: 'file', type: '0' };
const SYMLINK: LeafKind = { kind: 'symlink', type: '2' };
const FIFO: LeafKind = { kind: 'fifo', type: '6' };
const CHARACTER_DEVICE: LeafKind = { kind: 'character-device', type: '3' };
const BLOCK_DEVICE: LeafKind = { kind: 'block-device', type: '4' };

const { S_IFMT, S_IFDIR, S_IFREG, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK } = fsConstants;

function kindOf(st: WalkStat): LeafKind | undefined {
  switch (st.mode & S_IFMT) {
    case S_IFREG:
      return FILE;
    case S_IFLNK:
      return SYMLINK;
    case S_IFIFO:
      return FIFO;
    case S_IFCHR:
      return CHARACTER_DEVICE;
    case S_IFBLK:
      return BLOCK_DEVICE;
    default:
      return undefined; // a socket: GNU tar leaves it out too
  }
}

/** Linux's encoding of major and minor device numbers in st_rdev. */
function deviceNumbers(rdev: bigint): { devmajor: number; devminor: number } {
  const devmajor = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const devminor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { devmajor: Number(devmajor), devminor: Number(devminor) };
}

/**
 * Files up to this size are read in one synchronous call when their data is asked for. Metadata
 * calls (lstat, readdir, readlink, open, fstat, close) are synchronous too: on the 2-core VMs this
 * runs on, a call through libuv's thread pool cost the main thread 20-30 µs to submit and complete
 * against 2-5 µs for the call itself, and a folder of 4,000 small files took 0.75 s through the
 * pool (with 32 lstats and reads in flight) against 0.1 s synchronously; GNU tar takes 0.08 s.
 * Larger files are read ahead asynchronously (FileData), where the copy, not the call, is the cost.
 */
const SMALL_FILE = 256 * 1024;

class Walker {
  /** "dev:ino" of every inode with several names archived so far, to the archive name it has. */
  private readonly names = new Map<string, Buffer>();

  constructor(private readonly pool: SlabPool) {}

  /** `rel` (relative to the root, as bytes) is made text only for an error. */
  lstat(abs: Buffer, rel: Buffer): WalkStat {
    try {
      return walkStatOf(lstatSync(abs, BIGINT));
    } catch (e) {
      throw sourceError(rel.toString('utf8'), e);
    }
  }

  /**
   * The folder's entry, then everything below it. `name` is its archive name ("./" for the root,
   * "./conf/" below it), whose children are named `name` + their own; `abs` is the path to open it by.
   */
  *folder(name: Buffer, abs: Buffer, st: WalkStat): Generator<TarWriterEntry, void, undefined> {
    const relText = relativeText(name.subarray(0, name.length - 1));
    yield new WalkEntry(relText, name, 'directory', st, 0);
    const fd = openFolder(abs, relText, st);
    try {
      const base = PROC_FD ? Buffer.from(`/proc/self/fd/${fd}/`) : Buffer.concat([abs, SLASH]);
      const children = this.children(fd, base, name, relText);
      for (let i = 0; i < children.count; i++) {
        const child = children.child(i);
        if ((child.st.mode & S_IFMT) === S_IFDIR) yield* this.folder(withName(child.name, '/'), children.abs(i), child.st);
        else {
          const entry = this.leaf(child.name, () => children.abs(i), child.st);
          if (entry) yield entry;
        }
      }
      // A name added or removed while the folder was walked (GNU tar says the same of a folder).
      if (
        !unchanged(
          st,
          attempt(relText, () => fstatSync(fd, BIGINT)),
        )
      )
        throw new SourceChangedError(relText, CHANGED);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The folder's children in bytewise order of their names, each with its archive name and its
   * lstat, taken as it is asked for: from the addon's listing of the whole folder in one call, or
   * with readdir and lstat; abs(i) is the path to reach child i by, below `base` (the folder's
   * handle), made only for what is opened or read.
   */
  private children(fd: number, base: Buffer, name: Buffer, relText: string): Children {
    const listing = attempt(relText, () => readFolder(fd));
    if (listing) {
      return {
        count: listing.count,
        child: (i) => {
          const childName = listing.name(i, name);
          let st = listing.stat(i);
          if (typeof st === 'number') throw sourceError(relativeText(childName), errnoError(st, listing.name(i, base)));
          st ??= this.lstat(listing.name(i, base), childName.subarray(2));
          return { name: childName, st };
        },
        abs: (i) => listing.name(i, base),
      };
    }
    // Names as latin1 text, whose code units are their bytes: sort() puts them in bytewise order
    // without a call into Buffer.compare per comparison (13 ms for 2,600 names).
    const names = attempt(relText, () => readdirSync(base, { encoding: 'latin1' }));
    names.sort();
    return {
      count: names.length,
      child: (i) => {
        const childName = withName(name, names[i]!);
        return { name: childName, st: this.lstat(withName(base, names[i]!), childName.subarray(2)) };
      },
      abs: (i) => withName(base, names[i]!),
    };
  }

  /**
   * The entry of anything but a folder (archive name `name`, reached by the path absOf() gives), or
   * undefined for what is left out (a socket).
   */
  private leaf(name: Buffer, absOf: () => Buffer, st: WalkStat): TarWriterEntry | undefined {
    const what = kindOf(st);
    if (!what) return undefined;
    const relText = relativeText(name);
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = this.names.get(key);
      if (first) return new WalkEntry(relText, name, 'hardlink', st, 0, first);
      this.names.set(key, name);
    }
    if (what === FILE) {
      const size = st.size;
      const pool = this.pool;
      // Made only for a file that is read: the files cache passes most of an unchanged tree over.
      const data = (): MemberData => {
        const opened = (fd: number): void => {
          entry.pagesWrittenBack = writeBackPages(fd);
        };
        return size <= SMALL_FILE ? readSmallFile(absOf(), relText, st, pool, opened) : new FileData(absOf(), relText, st, pool, opened);
      };
      const entry = new WalkEntry(relText, name, 'file', st, paddingOf(size), undefined, data);
      return entry;
    }
    if (what === SYMLINK) {
      const target = attempt(relText, () => readlinkSync(absOf(), { encoding: 'buffer' }));
      return new WalkEntry(relText, name, 'symlink', st, 0, target);
    }
    return new WalkEntry(relText, name, what.kind, st, 0);
  }
}

interface Children {
  count: number;
  /** Child i's archive name and lstat. */
  child(i: number): { name: Buffer; st: WalkStat };
  /** The path to reach child i by, below its folder's handle. */
  abs(i: number): Buffer;
}

const TYPE_OF: Record<EntryKind, TypeFlag> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  'character-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
};

/**
 * An entry as the walk yields it. Its header is encoded when first asked for, from what the walk
 * saw: a file the files cache knows unchanged is compared by its stat and needs none (encoding
 * headers was a third of the walk of an unchanged tree).
 */
class WalkEntry implements TarWriterEntry {
  #header: Buffer | undefined;
  pagesWrittenBack = false;

  constructor(
    readonly path: string,
    readonly name: Buffer,
    readonly kind: EntryKind,
    readonly stat: WalkStat,
    readonly padding: number,
    readonly linkTarget?: Buffer,
    readonly data?: () => MemberData,
  ) {}

  get header(): Buffer {
    this.#header ??= encodeHeader({
      name: this.name,
      type: TYPE_OF[this.kind],
      mode: this.stat.mode,
      uid: this.stat.uid,
      gid: this.stat.gid,
      size: this.kind === 'file' ? this.stat.size : 0,
      mtimeNs: this.stat.mtimeNs,
      ...(this.linkTarget ? { linkname: this.linkTarget } : {}),
      ...(this.kind === 'character-device' || this.kind === 'block-device' ? deviceNumbers(this.stat.rdev) : {}),
      ...(this.stat.xattrs && this.kind !== 'hardlink' ? { xattrs: archivedXattrs(this.stat.xattrs, this.path) } : {}),
    });
    return this.#header;
  }
}

/**
 * The attributes folder-stat.c packed (all but an SELinux label, which belongs to the restoring
 * machine's policy), as a header carries them: sorted by name, so the same attributes give the same bytes.
 */
function archivedXattrs(packed: Buffer, rel: string): Xattr[] {
  if (packed.length > MAX_XATTR_BYTES) throw new SourceAttributesTooLarge(rel, packed.length, MAX_XATTR_BYTES);
  const out: Xattr[] = [];
  for (let at = 0; at + 4 <= packed.length; ) {
    const nameLength = packed.readUInt32LE(at);
    const name = packed.toString('latin1', at + 4, at + 4 + nameLength);
    at += 4 + nameLength;
    const valueLength = packed.readUInt32LE(at);
    const value = packed.subarray(at + 4, at + 4 + valueLength);
    at += 4 + valueLength;
    out.push({ name, value });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** An entry's attributes at most: with its path, link target and times, its extended header stays below what a restore reads. */
const MAX_XATTR_BYTES = MAX_EXTENDED_BYTES - 64 * 1024;

/** An errno the addon gave, as the error Node's lstat would have thrown ("ENOENT: no such file or directory, lstat '…'"). */
function errnoError(errno: number, path: Buffer): NodeJS.ErrnoException {
  const [code, description] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, 'unknown error'];
  return Object.assign(new Error(`${code}: ${description}, lstat '${path.toString('utf8')}'`), { code, errno: -errno, syscall: 'lstat' });
}

const BIGINT = { bigint: true } as const;
const EMPTY = Buffer.alloc(0);

/** `prefix` and then the bytes of `latin1` (a name as readdir gave it in latin1), as one buffer. */
function withName(prefix: Buffer, latin1: string): Buffer {
  const b = Buffer.allocUnsafe(prefix.length + latin1.length);
  prefix.copy(b, 0);
  b.write(latin1, prefix.length, 'latin1');
  return b;
}

/** An archive name ("./conf/app.conf", "./conf" or "." once a folder's slash is off) as the path relative to the root. */
function relativeText(name: Buffer): string {
  return name.length <= 2 ? '' : name.toString('utf8', 2);
}

/** `call()`, its system error reported as the walk reports it. */
function attempt<T>(rel: string, call: () => T): T {
  try {
    return call();
  } catch (e) {
    throw sourceError(rel, e);
  }
}

/**
 * Read whole, then checked to be the inode the walk saw, unchanged (fstat on the handle read from).
 * Opened without following a link, nor blocking on a FIFO put in its place.
 */
function readSmallFile(abs: Buffer, rel: string, st: WalkStat, pool: SlabPool, opened: (fd: number) => void): Buffer {
  const size = st.size;
  const fd = attempt(rel, () => openSync(abs, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK));
  testOnlyLogOpen(rel);
  try {
    opened(fd);
    const piece = pool.piece(size + paddingOf(size));
    let got = 0;
    for (let n = -1; got < size && n !== 0; got += n) n = readSync(fd, piece, got, size - got, got);
    if (!unchanged(st, fstatSync(fd, { bigint: true }))) throw new SourceChangedError(rel, CHANGED);
    if (got < size) throw new SourceChangedError(rel, `File shrank by ${size - got} bytes`);
    piece.fill(0, size);
    return piece;
  } catch (e) {
    throw sourceError(rel, e);
  } finally {
    closeSync(fd);
  }
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => close(fd, () => resolve()));
}

/** A handle on the folder the walk saw at `abs`, never on a link or another folder put in its place. */
function openFolder(abs: Buffer, rel: string, st: WalkStat): number {
  const fd = attempt(rel, () => openSync(abs, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW));
  try {
    const now = attempt(rel, () => fstatSync(fd, { bigint: true }));
    if (now.ino !== st.ino || now.dev !== st.dev) throw new SourceChangedError(rel, CHANGED);
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/**
 * TEST ONLY: AZSBACKUP_TEST_OPEN_LOG names a file this process appends a line to (the file's path
 * relative to the root) each time it opens a regular file to read it, so the tests of the files
 * cache can prove that an unchanged file is not read (test/engine/files-cache.test.ts). Read once;
 * unset, it costs one test per file opened.
 */
const OPEN_LOG = process.env.AZSBACKUP_TEST_OPEN_LOG;
function testOnlyLogOpen(rel: string): void {
  if (OPEN_LOG) appendFileSync(OPEN_LOG, `${rel}\n`);
}

/**
 * TEST ONLY: AZSBACKUP_TEST_APPEND_WHILE_READ names a file this process appends a line to after
 * the first piece of it was read, AZSBACKUP_TEST_APPEND_TIMES times at most (1 by default), so
 * the tests of the engine's retries can change a file in the middle of its read as a live writer
 * would (test/engine/retry.test.ts). Unset, it costs one look at the environment per large file.
 */
let testAppends = 0;
function testOnlyAppendWhileRead(st: WalkStat): void {
  const file = process.env.AZSBACKUP_TEST_APPEND_WHILE_READ;
  if (!file || testAppends >= Number(process.env.AZSBACKUP_TEST_APPEND_TIMES ?? 1)) return;
  const target = lstatSync(file, { bigint: true, throwIfNoEntry: false });
  if (target?.ino !== st.ino || target.dev !== st.dev) return;
  testAppends++;
  appendFileSync(file, 'appended\n');
}

/** Fills `buffer` from `position`; returns the bytes read, fewer only at the end of the file. */
function readFull(fd: number, buffer: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const more = (): void =>
      read(fd, buffer, got, length - got, position + got, (e, n) => {
        if (e) return reject(e);
        got += n;
        if (n === 0 || got === length) resolve(got);
        else more();
      });
    more();
  });
}

/**
 * A regular file's contents and its padding, read ahead into the pool. It is opened without
 * following a link (nor blocking on a FIFO put in its place) and must be the inode the walk saw,
 * unchanged; after the last byte, it must still be, with no byte more or less.
 */
class FileData extends Readable {
  private fd = -1;
  private offset = 0;
  private readonly size: number;
  private readonly inFlight: Promise<Buffer>[] = [];
  private stopped = false;

  constructor(
    private readonly abs: Buffer,
    private readonly rel: string,
    private readonly st: WalkStat,
    private readonly pool: SlabPool,
    private readonly opened: (fd: number) => void,
  ) {
    super({ highWaterMark: PIECE });
    this.size = st.size;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    // Synchronous, as every metadata call of the walk (SMALL_FILE says why): two round trips
    // through the thread pool per file left the main thread waiting at the start of each file.
    try {
      this.fd = openSync(this.abs, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
      testOnlyLogOpen(this.rel);
      this.opened(this.fd);
      if (!unchanged(this.st, fstatSync(this.fd, { bigint: true }))) throw new SourceChangedError(this.rel, CHANGED);
    } catch (e) {
      callback(sourceError(this.rel, e));
      return;
    }
    callback();
  }

  override _read(): void {
    this.issue();
    const next = this.inFlight.shift();
    if (!next) {
      this.push(null);
      return;
    }
    next.then(
      (piece) => {
        this.issue();
        this.push(piece);
      },
      (e: unknown) => this.destroy(sourceError(this.rel, e)),
    );
  }

  private issue(): void {
    while (!this.stopped && this.inFlight.length < DEPTH && this.offset < this.size) {
      const at = this.offset;
      const length = Math.min(PIECE, this.size - at);
      this.offset += length;
      const last = this.offset === this.size;
      const piece = this.pool.piece(last ? length + paddingOf(this.size) : length);
      const earlier = [...this.inFlight];
      const p = this.readPiece(piece, length, at, last, earlier);
      p.catch(() => undefined);
      this.inFlight.push(p);
    }
  }

  private async readPiece(piece: Buffer, length: number, at: number, last: boolean, earlier: Promise<unknown>[]): Promise<Buffer> {
    const got = await readFull(this.fd, piece, length, at);
    if (at === 0) testOnlyAppendWhileRead(this.st);
    if (got < length) throw new SourceChangedError(this.rel, `File shrank by ${this.size - at - got} bytes`);
    if (!last) return piece;
    piece.fill(0, length);
    await Promise.allSettled(earlier);
    if (!unchanged(this.st, fstatSync(this.fd, { bigint: true }))) throw new SourceChangedError(this.rel, CHANGED);
    return piece;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.stopped = true;
    const fd = this.fd;
    Promise.allSettled(this.inFlight)
      .then(() => (fd >= 0 ? closeFd(fd) : undefined))
      .then(() => callback(error));
  }
}
