import { close as closeFd, fchmod, fchown, ftruncate, write } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { directIo, type DirectIoAddon } from '../native/direct-io.js';
import { sharedCopier } from '../native/shared-copy.js';
import { openBeneath, type BeneathAddon } from '../native/open-beneath.js';

/**
 * A restore's large files, written by us straight to disk (O_DIRECT) while GNU tar extracts the
 * rest (directory.ts). Through the page cache, each of their bytes was copied into GNU tar's pipe,
 * out of it, and into a page the kernel had to find first: on these VMs a fresh page costs what
 * a first touch of memory costs, and GNU tar's one core spent most of a 500 MiB restore there
 * (docs/PERFORMANCE.md). Written from our memory to the device, a file costs one copy into an
 * aligned buffer, and its data is on disk when it is closed, so the flush before the restored
 * folder goes into place (src/fs/flush-to-disk.ts) has little left to do.
 *
 * Only what GNU tar would do plainly is done here: a regular file's data, mode, owner (as root,
 * by number) and times to the nanosecond. A file with more in its header (extended attributes,
 * ACLs) stays with GNU tar, and so does every file where the addons are missing or the file
 * system refuses O_DIRECT (found once per restore, before anything is extracted).
 */

/** Smaller files are left to GNU tar: their headers dominate, and most fit in one page. */
export const DIRECT_MIN_BYTES = 1024 * 1024;
const ALIGNMENT = 4096;
/** One write; four of them go round, up to three on libuv's threads while one fills. */
const SLAB_BYTES = 1024 * 1024;
const SLABS = 4;
const PROBE_NAME = '.azs-direct-probe';

const writeAt = promisify(write);
const truncate = promisify(ftruncate);
const chmod = promisify(fchmod);
const chown = promisify(fchown);
const close = promisify(closeFd);

/** What a file written here takes from its archive entry. */
export interface DirectFileEntry {
  /** Relative to the folder extracted into, checked by the caller (no '..', no link on the way). */
  rel: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  atime?: Date;
}

/** What a file's writing meets once the restore has stopped and the file was let go (abandon). */
function abandonedError(file: string): Error {
  return new Error(`the restore stopped; '${file}' is no longer written`);
}

/**
 * `e` as an error that names `file`, its code kept (a full disk is DestinationFull by it). The
 * addon's errors read "below the share's root: <reason>" (it was written for shares) and Node's
 * write errors name no file: the restore's error would name neither the file nor the folder.
 */
function naming(e: unknown, file: string): Error {
  const err = e as NodeJS.ErrnoException;
  const reason = String(err?.message ?? e).replace(/^below the share's root: /, '');
  return Object.assign(new Error(`'${file}': ${reason}`), { code: err?.code, path: file, cause: e });
}

/** Seconds and nanoseconds (0 to 999,999,999) of a time in nanoseconds, also before 1970. */
function splitNs(ns: bigint): [number, number] {
  let seconds = ns / 1_000_000_000n;
  let rest = ns - seconds * 1_000_000_000n;
  if (rest < 0n) {
    seconds -= 1n;
    rest += 1_000_000_000n;
  }
  return [Number(seconds), Number(rest)];
}

/** The writer of one restore's large files into `root`, which GNU tar is filling with the rest. */
export class DirectFiles {
  private readonly free: Buffer[];
  private readonly waiting: ((slab: Buffer) => void)[] = [];
  private readonly open = new Set<DirectFile>();
  /** Set by abandon(): no file is made after it, whatever step of the stream was still under way. */
  private abandoned = false;
  /** The restored stream's chunks lie in memory shared with the decoding thread, where V8's copy is slow. */
  readonly copy = sharedCopier();

  private constructor(
    readonly root: string,
    readonly io: DirectIoAddon,
    readonly beneath: BeneathAddon,
    readonly asRoot: boolean,
  ) {
    this.free = Array.from({ length: SLABS }, () => io.alignedBuffer(SLAB_BYTES));
  }

  /**
   * A writer into the empty folder `root`, or undefined where its files cannot be written past the
   * page cache: no addons, or a file system that refuses O_DIRECT (tried once with a probe file,
   * removed before anything else is written there).
   */
  static async into(root: string, asRoot: boolean): Promise<DirectFiles | undefined> {
    const io = directIo();
    const beneath = openBeneath();
    if (!io || !beneath) return undefined;
    const dirfd = await beneath.openFolder(root, [], 0);
    try {
      const fd = await beneath.createDirectFile(dirfd, PROBE_NAME, 0o600).catch(() => undefined);
      if (fd === undefined) return undefined;
      try {
        const block = io.alignedBuffer(ALIGNMENT);
        await writeAt(fd, block, 0, ALIGNMENT, 0);
      } catch {
        return undefined;
      } finally {
        await close(fd);
        await beneath.unlinkAt(dirfd, PROBE_NAME);
      }
      return new DirectFiles(root, io, beneath, asRoot);
    } finally {
      await close(dirfd);
    }
  }

  /** The file `entry.rel`, made new (never over anything), its folders made where GNU tar has not yet. */
  async create(entry: DirectFileEntry): Promise<DirectFile> {
    const where = path.join(this.root, entry.rel);
    if (this.abandoned) throw abandonedError(where);
    const segments = entry.rel.split('/');
    const name = segments.pop()!;
    // Folders made here get the archive's mode, owner and times with every other folder once GNU
    // tar is done (restoreMetadata); meanwhile only we write in them.
    const dirfd = await this.beneath.openFolder(this.root, segments, 0o700).catch((e: unknown) => {
      throw naming(e, path.join(this.root, ...segments));
    });
    let fd: number;
    try {
      fd = await this.beneath.createDirectFile(dirfd, name, 0o600);
    } catch (e) {
      throw naming(e, where);
    } finally {
      await close(dirfd);
    }
    // Abandoned while it was being made: abandon() did not see it, so it is closed here.
    if (this.abandoned) {
      await close(fd);
      throw abandonedError(where);
    }
    const file = new DirectFile(this, entry, fd);
    this.open.add(file);
    return file;
  }

  /**
   * After a failure: stops every file, waits for its writes under way, and closes it; nothing is
   * written, made or closed here afterwards. The stream's steps may still be running (a chunk
   * being copied, a file being made), and each one then fails instead of using a closed descriptor.
   */
  async abandon(): Promise<void> {
    this.abandoned = true;
    await Promise.all([...this.open].map((f) => f.abandon()));
  }

  forget(file: DirectFile): void {
    this.open.delete(file);
  }

  /** A free slab, once one is. */
  slab(): Buffer | Promise<Buffer> {
    return this.free.pop() ?? new Promise((resolve) => this.waiting.push(resolve));
  }

  release(slab: Buffer): void {
    const next = this.waiting.shift();
    if (next) next(slab);
    else this.free.push(slab);
  }
}

/** One file being written: its bytes in order, then finish(). */
export class DirectFile {
  private slab: Buffer | undefined;
  private fill = 0;
  private offset = 0;
  private readonly writes = new Set<Promise<void>>();
  private failure: unknown;
  /** Set by abandon(): no write is started after it, and finish() goes no further. */
  private abandoned = false;
  private finishing: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly files: DirectFiles,
    private readonly entry: DirectFileEntry,
    private readonly fd: number,
  ) {}

  /** Takes the next bytes (copied: `piece` is free again when this returns or resolves). */
  write(piece: Buffer): Promise<void> | undefined {
    this.check();
    let at = 0;
    while (at < piece.length) {
      if (!this.slab) {
        const next = this.files.slab();
        if (next instanceof Promise) return next.then((slab) => this.resume(slab, piece, at));
        this.slab = next;
      }
      const n = Math.min(SLAB_BYTES - this.fill, piece.length - at);
      this.files.copy(this.slab, this.fill, piece.subarray(at, at + n));
      this.fill += n;
      at += n;
      if (this.fill === SLAB_BYTES) this.submit(SLAB_BYTES);
    }
    return undefined;
  }

  private async resume(slab: Buffer, piece: Buffer, at: number): Promise<void> {
    // The slab came free when the file was abandoned under this write.
    if (this.abandoned) {
      this.files.release(slab);
      throw abandonedError(path.join(this.files.root, this.entry.rel));
    }
    this.slab = slab;
    await this.write(piece.subarray(at));
  }

  /** Writes the last bytes, cuts the file to its size and gives it its mode, owner and times. */
  finish(): Promise<void> {
    this.finishing ??= this.finishFile();
    return this.finishing;
  }

  private async finishFile(): Promise<void> {
    this.check();
    if (this.slab && this.fill > 0) {
      const length = Math.ceil(this.fill / ALIGNMENT) * ALIGNMENT;
      this.slab.fill(0, this.fill, length);
      this.submit(length);
    } else if (this.slab) {
      this.files.release(this.slab);
      this.slab = undefined;
    }
    await Promise.all(this.writes);
    this.check();
    const { size, mode, uid, gid, mtimeNs, atime } = this.entry;
    try {
      if (this.offset !== size) await truncate(this.fd, size);
      if (this.files.asRoot) await chown(this.fd, uid, gid);
      // Every bit, as GNU tar -p sets them: without root the file is the restoring account's own, so
      // its set-user-ID bit holds, and the kernel itself drops set-group-ID for a group not its own.
      await chmod(this.fd, mode & 0o7777);
      const [mtimeSeconds, mtimeNanoseconds] = splitNs(mtimeNs);
      const [atimeSeconds, atimeNanoseconds] = atime ? splitNs(BigInt(atime.getTime()) * 1_000_000n) : [0, -1];
      this.files.io.setTimes(this.fd, atimeSeconds, atimeNanoseconds, mtimeSeconds, mtimeNanoseconds);
      await this.closeFile();
    } catch (e) {
      throw naming(e, path.join(this.files.root, this.entry.rel));
    }
  }

  async abandon(): Promise<void> {
    this.abandoned = true;
    if (this.slab) this.files.release(this.slab);
    this.slab = undefined;
    // The descriptor closes only after its writes and a finish under way (a truncate, chown or
    // chmod): a number closed under them could be another file's by the time they land.
    await Promise.allSettled(this.writes);
    await this.finishing?.catch(() => undefined);
    await this.closeFile().catch(() => undefined);
  }

  /** Closes the descriptor once, whoever asks first: a second close could close another file's. */
  private closeFile(): Promise<void> {
    this.closing ??= (async () => {
      this.files.forget(this);
      await close(this.fd);
    })();
    return this.closing;
  }

  private check(): void {
    if (this.abandoned) throw abandonedError(path.join(this.files.root, this.entry.rel));
    if (this.failure !== undefined) throw this.failure;
  }

  private submit(length: number): void {
    const slab = this.slab!;
    const position = this.offset;
    this.offset += length;
    this.slab = undefined;
    this.fill = 0;
    const done = writeAt(this.fd, slab, 0, length, position)
      .then(({ bytesWritten }) => {
        // A short write past the page cache is the device running out of room in the middle of it.
        if (bytesWritten !== length)
          throw Object.assign(new Error(`ENOSPC: no space left on device, wrote only ${bytesWritten} of ${length} bytes`), {
            code: 'ENOSPC',
          });
      })
      .catch((e: unknown) => {
        this.failure ??= naming(e, path.join(this.files.root, this.entry.rel));
      })
      .finally(() => {
        this.writes.delete(done);
        this.files.release(slab);
      });
    this.writes.add(done);
  }
}
