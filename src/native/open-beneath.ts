import { loadAddon, nativeDisabled } from './addon.js';

/**
 * open-beneath.c: folders below a share's root opened without following a symbolic link (made
 * when missing, if asked), and the steps of a write or a rename made relative to a folder held
 * open, so a folder swapped for a link after it was checked leads nowhere. Unavailable when the
 * addon was not compiled, under AZSBACKUP_NATIVE=off, or off Linux: the caller then works by path.
 * Rejections carry `code`, the errno name; openFolder's also `segment`, the index of the name it
 * failed at (ELOOP: a link), or -1.
 */
export interface BeneathAddon {
  /** A descriptor of root/segments..., the caller's to close; a `folderMode` (not 0) makes missing folders durably, with that mode less the umask. */
  openFolder(root: string, segments: readonly string[], folderMode: number): Promise<number>;
  /** A descriptor of the new file `name` (O_EXCL, O_NOFOLLOW), open for writing. */
  createFile(dirfd: number, name: string, mode: number): Promise<number>;
  /** The same, opened with O_DIRECT: writes from 4096-aligned memory in 4096-byte multiples; EINVAL where the file system cannot. */
  createDirectFile(dirfd: number, name: string, mode: number): Promise<number>;
  /** What `name` is, a link never followed (it is 'other'); null when nothing is there. */
  kindAt(dirfd: number, name: string): Promise<'directory' | 'other' | null>;
  /** renameat, or renameat2(RENAME_NOREPLACE) with `noReplace` (EEXIST; EINVAL or ENOSYS where unsupported). */
  renameAt(fromFd: number, from: string, toFd: number, to: string, noReplace: boolean): Promise<void>;
  linkAt(fromFd: number, from: string, toFd: number, to: string): Promise<void>;
  /** Removes a file or link; nothing there is no error. */
  unlinkAt(dirfd: number, name: string): Promise<void>;
  /** Removes a file, a link (itself) or a folder with everything in it, never following a link; nothing there is no error. */
  removeTreeAt(dirfd: number, name: string): Promise<void>;
}

let addon: BeneathAddon | null | undefined;

/** The addon, or undefined where it is not available here. */
export function openBeneath(): BeneathAddon | undefined {
  if (nativeDisabled()) return undefined;
  if (addon === undefined) addon = process.platform === 'linux' ? (loadAddon<BeneathAddon>('open_beneath') ?? null) : null;
  return addon ?? undefined;
}
