import { loadAddon, nativeDisabled } from './addon.js';

/**
 * readFolder() of folder-stat.c: a folder's names, sorted bytewise, each with what lstat says of
 * it, in one call. Unavailable when the addon was not compiled, off Linux, or under
 * AZSBACKUP_NATIVE=off; the walk then reads the folder and lstats each name itself.
 */
export interface FolderListing {
  count: number;
  /** Child i's name: its bytes after `prefix`, as one new buffer. */
  name(i: number, prefix: Buffer): Buffer;
  /**
   * What lstat says of child i; the errno (a number) when it failed, or undefined when its times
   * do not fit 64 bits of nanoseconds (the caller asks lstat for it).
   */
  stat(i: number): ListedStat | number | undefined;
}

export interface ListedStat {
  /** st_size: for a hard link, that of the file it names. */
  size: number;
  /** st_mode, type bits included. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  dev: bigint;
  rdev: bigint;
  /**
   * The entry's extended attributes (POSIX ACLs among them) as folder-stat.c packs them; absent
   * when it has none, and always where the addon is not there (Node cannot read them).
   */
  xattrs?: Buffer;
}

type Addon = {
  readFolder(fd: number): ArrayBuffer;
  readXattrs(path: string): ArrayBuffer;
  copyXattrs(from: string, to: string): void;
  writeBackPages(fd: number): boolean;
};
let addon: Addon | null | undefined;

function folderStatAddon(): Addon | null {
  if (nativeDisabled()) return null;
  if (addon === undefined) addon = process.platform === 'linux' ? (loadAddon<Addon>('folder_stat') ?? null) : null;
  return addon;
}

/**
 * `to` takes the extended attributes of `from` (its own that `from` lacks are removed); false where
 * the addon is not there and nothing was done. Throws with the errno's code when one cannot be set.
 */
export function copyXattrs(from: string, to: string): boolean {
  const native = folderStatAddon();
  if (!native) return false;
  native.copyXattrs(from, to);
  return true;
}

/**
 * Hands the open file's dirty pages to writeback (folder-stat.c says why): true when done, false
 * where the file system cannot or the addon is not there.
 */
export function writeBackPages(fd: number): boolean {
  return folderStatAddon()?.writeBackPages(fd) ?? false;
}

/** The extended attributes of `path` itself, packed as ListedStat.xattrs; undefined when it has none or the addon is not there. */
export function readXattrs(path: string): Buffer | undefined {
  const native = folderStatAddon();
  if (!native) return undefined;
  const packed = native.readXattrs(path);
  return packed.byteLength > 0 ? Buffer.from(packed) : undefined;
}

/** 8-byte slots per child, after the count (folder-stat.c). */
const SLOTS = 16;

/** The listing of the folder open at `fd`, or undefined when the addon is not there (or turned off). Throws as readdir would. */
export function readFolder(fd: number): FolderListing | undefined {
  const native = folderStatAddon();
  if (!native) return undefined;
  return new Listing(native.readFolder(fd));
}

class Listing implements FolderListing {
  readonly count: number;
  private readonly f64: Float64Array;
  private readonly i64: BigInt64Array;
  private readonly u64: BigUint64Array;
  private readonly bytes: Buffer;

  constructor(buffer: ArrayBuffer) {
    const words = buffer.byteLength >> 3;
    this.f64 = new Float64Array(buffer, 0, words);
    this.i64 = new BigInt64Array(buffer, 0, words);
    this.u64 = new BigUint64Array(buffer, 0, words);
    this.bytes = Buffer.from(buffer);
    this.count = this.f64[0]!;
  }

  name(i: number, prefix: Buffer): Buffer {
    const r = 1 + i * SLOTS;
    const from = this.f64[r + 6]!;
    const length = this.f64[r + 7]!;
    const b = Buffer.allocUnsafe(prefix.length + length);
    // Uint8Array's set(), not Buffer's copy(): its argument checks in JavaScript cost more, before the JIT warms up.
    b.set(prefix, 0);
    b.set(this.bytes.subarray(from, from + length), prefix.length);
    return b;
  }

  stat(i: number): ListedStat | number | undefined {
    const r = 1 + i * SLOTS;
    const { f64, i64, u64 } = this;
    if (f64[r] !== 0) return f64[r]!;
    if (f64[r + 13] !== 1) return undefined;
    return {
      size: f64[r + 5]!,
      mode: f64[r + 1]!,
      uid: f64[r + 2]!,
      gid: f64[r + 3]!,
      nlink: f64[r + 4]!,
      mtimeNs: i64[r + 8]!,
      ctimeNs: i64[r + 9]!,
      ino: u64[r + 10]!,
      dev: u64[r + 11]!,
      rdev: u64[r + 12]!,
      ...(f64[r + 15]! > 0 ? { xattrs: this.bytes.subarray(f64[r + 14]!, f64[r + 14]! + f64[r + 15]!) } : {}),
    };
  }
}
