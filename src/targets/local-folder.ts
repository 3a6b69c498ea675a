import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { syncDirectory } from '../fs/durable-write.js';
import { type BeneathAddon, openBeneath } from '../native/open-beneath.js';
import { renameUnlessExists } from '../native/rename-exchange.js';
import { fileOfDescriptor, type WritableFile } from './durable-file.js';

/**
 * A folder of a local target, and the steps of a write or a rename by name within it. Where the
 * addon is available the folder is held open and every step is relative to it (open-beneath.c):
 * a folder on the way that a share writer swaps for a symbolic link after the target checked it
 * is refused as the link it is, and one swapped once opened keeps the steps where it was opened,
 * never on this machine. Without the addon each step goes by path, as it always did.
 */
export interface LocalFolder {
  /** A new file `name`, open for writing; fails when the name exists. */
  createFile(name: string): Promise<WritableFile>;
  /** What `name` is, never following a link ('other'); undefined when nothing is there. */
  kind(name: string): Promise<'directory' | 'other' | undefined>;
  /** rename(2): replaces a file at `toName`. */
  rename(name: string, to: LocalFolder, toName: string): Promise<void>;
  /** A rename that refuses an existing `toName` in one step; 'unsupported' where none exists (nothing changed). */
  renameUnlessExists(name: string, to: LocalFolder, toName: string): Promise<'renamed' | 'exists' | 'unsupported'>;
  /** link(2), never following `name`. */
  link(name: string, to: LocalFolder, toName: string): Promise<void>;
  /** Removes a file or link; nothing there is no error. */
  remove(name: string): Promise<void>;
  /**
   * Removes a file, a link (itself) or a folder with everything in it; nothing there is no error.
   * Held open, a folder swapped for a link while it is emptied sends no unlink out of the share.
   */
  removeTree(name: string): Promise<void>;
  /** fsyncs the folder, so the entries made or removed in it survive a crash (best effort). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The modes of what a backup makes on a local folder share, less the umask: never writable by
 * others, whatever the umask (a service manager or a container may start the service with umask
 * 000, and then any local account could truncate a pack or delete a backup); the group's bits and
 * the reading by others follow the umask, so that an operator who shares a mount with a group
 * (umask 002, a setgid share folder) keeps that group's access. docs/OPERATIONS.md, "Who may
 * change the backups".
 */
export const SHARE_FOLDER_MODE = 0o775;
export const SHARE_FILE_MODE = 0o664;

/**
 * The folder `segments` below `root` (the root itself may be a link: the operator's choice).
 * `create`: what is missing is made, and the folder holding each new one fsynced. Rejects with the
 * errno's code; ELOOP with `segment`, the index of the segment that is a link.
 */
export async function openLocalFolder(root: string, segments: readonly string[], create: boolean): Promise<LocalFolder> {
  const native = openBeneath();
  if (native) return new HeldFolder(native, await native.openFolder(root, segments, create ? SHARE_FOLDER_MODE : 0));
  const dir = path.join(root, ...segments);
  if (create) await makeFoldersDurably(dir);
  return new PathFolder(dir);
}

const fsyncFd = promisify(fs.fsync);
const closeFd = promisify(fs.close);
const UNSUPPORTED = new Set(['EINVAL', 'ENOSYS', 'ENOTSUP', 'EOPNOTSUPP']);

class HeldFolder implements LocalFolder {
  constructor(
    private readonly native: BeneathAddon,
    readonly fd: number,
  ) {}

  async createFile(name: string): Promise<WritableFile> {
    return fileOfDescriptor(await this.native.createFile(this.fd, name, SHARE_FILE_MODE));
  }

  async kind(name: string): Promise<'directory' | 'other' | undefined> {
    return (await this.native.kindAt(this.fd, name)) ?? undefined;
  }

  rename(name: string, to: LocalFolder, toName: string): Promise<void> {
    return this.native.renameAt(this.fd, name, (to as HeldFolder).fd, toName, false);
  }

  async renameUnlessExists(name: string, to: LocalFolder, toName: string): Promise<'renamed' | 'exists' | 'unsupported'> {
    try {
      await this.native.renameAt(this.fd, name, (to as HeldFolder).fd, toName, true);
      return 'renamed';
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (code === 'EEXIST') return 'exists';
      if (UNSUPPORTED.has(code)) return 'unsupported';
      throw e;
    }
  }

  link(name: string, to: LocalFolder, toName: string): Promise<void> {
    return this.native.linkAt(this.fd, name, (to as HeldFolder).fd, toName);
  }

  remove(name: string): Promise<void> {
    return this.native.unlinkAt(this.fd, name);
  }

  removeTree(name: string): Promise<void> {
    return this.native.removeTreeAt(this.fd, name);
  }

  async sync(): Promise<void> {
    // Some file systems (network mounts) refuse fsync on a folder, as syncDirectory allows.
    await fsyncFd(this.fd).catch(() => {});
  }

  close(): Promise<void> {
    return closeFd(this.fd);
  }
}

class PathFolder implements LocalFolder {
  constructor(readonly dir: string) {}

  createFile(name: string): Promise<WritableFile> {
    return fsp.open(path.join(this.dir, name), 'wx', SHARE_FILE_MODE);
  }

  async kind(name: string): Promise<'directory' | 'other' | undefined> {
    try {
      return (await fsp.lstat(path.join(this.dir, name))).isDirectory() ? 'directory' : 'other';
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  rename(name: string, to: LocalFolder, toName: string): Promise<void> {
    return fsp.rename(path.join(this.dir, name), path.join((to as PathFolder).dir, toName));
  }

  async renameUnlessExists(name: string, to: LocalFolder, toName: string): Promise<'renamed' | 'exists' | 'unsupported'> {
    return renameUnlessExists(path.join(this.dir, name), path.join((to as PathFolder).dir, toName));
  }

  link(name: string, to: LocalFolder, toName: string): Promise<void> {
    return fsp.link(path.join(this.dir, name), path.join((to as PathFolder).dir, toName));
  }

  remove(name: string): Promise<void> {
    return fsp.rm(path.join(this.dir, name), { force: true });
  }

  removeTree(name: string): Promise<void> {
    // By path: each entry's path is resolved again, the window the addon closes.
    return fsp.rm(path.join(this.dir, name), { recursive: true, force: true });
  }

  sync(): Promise<void> {
    return syncDirectory(this.dir);
  }

  async close(): Promise<void> {}
}

/**
 * mkdir -p whose new folders survive a crash: the folder holding each new entry is fsynced, as
 * after a rename, or a backup reported committed could lose its new stamp folder with everything
 * in it.
 */
async function makeFoldersDurably(dir: string): Promise<void> {
  const first = await fsp.mkdir(dir, { recursive: true, mode: SHARE_FOLDER_MODE });
  if (first === undefined) return;
  for (let made = dir; ; made = path.dirname(made)) {
    await syncDirectory(path.dirname(made));
    if (made === first) return;
  }
}
