import { loadAddon, nativeDisabled } from './addon.js';

/**
 * direct-io.c: memory a write past the page cache (O_DIRECT) can come from, times to the
 * nanosecond on an open file, and syncfs(2). Unavailable when the addon was not compiled, under
 * AZSBACKUP_NATIVE=off, or off Linux: a restore then leaves every file to GNU tar and makes what
 * it restored durable with `sync -f` (src/fs/flush-to-disk.ts). Errors carry `code`, the
 * errno name.
 */
export interface DirectIoAddon {
  /** `bytes` (a multiple of 4096) of memory starting on a 4096-byte boundary. */
  alignedBuffer(bytes: number): Buffer;
  /** futimens: `atimeNanoseconds` -1 sets the access time to now. */
  setTimes(fd: number, atimeSeconds: number, atimeNanoseconds: number, mtimeSeconds: number, mtimeNanoseconds: number): void;
  /** syncfs(2) on the file system holding `fd`. */
  syncFileSystem(fd: number): Promise<void>;
}

let addon: DirectIoAddon | null | undefined;

/** The addon, or undefined where it is not available here. */
export function directIo(): DirectIoAddon | undefined {
  if (nativeDisabled()) return undefined;
  if (addon === undefined) addon = process.platform === 'linux' ? (loadAddon<DirectIoAddon>('direct_io') ?? null) : null;
  return addon ?? undefined;
}
