import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AzsError } from '../errors.js';
import { recyclerOf } from '../memory/recycling-readable.js';
import { DurableFileWriter, FLUSH_EVERY_BYTES } from './durable-file.js';
import { readAhead } from './read-ahead.js';
import { type LocalFolder, openLocalFolder } from './local-folder.js';
import { isTargetPath, partialNameFor, splitTargetPath } from './paths.js';
import {
  alreadyExists,
  isRefusedFile,
  notFound,
  shareError,
  shareFileLimit,
  SMALL_FILE_MAX_BYTES,
  SYMBOLIC_LINK_ID,
  symbolicLinkOnShare,
} from './share-errors.js';
import { checkKind, isMissingFile, readFileBounded } from '../io/bounded-read.js';
import type { FreeSpace, Target, TargetEntry, TreeEntry, WriteOptions } from './target.js';

function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

/** Small files read at once by readSmallFiles. */
const SMALL_READS_AT_ONCE = 8;

/**
 * A local or mounted folder. Writes go to a temporary name, are fsynced and renamed into place, so
 * a partly written file never shows under its final name.
 *
 * Nothing below the root is reached through a symbolic link (the root itself, the operator's
 * choice, may be one): on a mounted share anyone who may write to it could otherwise point
 * `MASBackup` or `AzsRepository` at a folder of this machine, and prune would delete there and
 * backups write there. Each path's folders are checked with lstat before it is used, files are
 * opened with O_NOFOLLOW, a link lists as an entry of its own, never as what it points at. mkdir,
 * write and rename then work from folders opened without following a link (local-folder.ts), and
 * a folder is emptied from folders held open (open-beneath.c), so a link swapped in after the
 * check, or mid-way, leads nowhere. Without those addons each step goes by path again: a link put
 * in place between the check and that step is followed once. (read, list and stat still go by
 * path after the check: they can at worst show what the link points at, never change it.)
 *
 * Permission problems (EACCES, EPERM, EROFS) are reported as ShareAuthentication with category
 * PermissionDenied: for a mounted share the fix is the same as for an SMB account without rights
 * (grant the service account write access), and exit 13 tells scripts it is about access.
 */
export class LocalFolderTarget implements Target {
  readonly location: string;

  constructor(readonly root: string) {
    if (!path.isAbsolute(root)) {
      throw new AzsError(`Internal error: the local target root '${root}' is not absolute.`, {
        errorId: 'InvalidTargetPath',
        category: 'InvalidOperation',
        targetObject: root,
      });
    }
    this.root = path.resolve(root);
    this.location = this.root;
  }

  /**
   * Refuses `p` when one of its first `upTo` segments (all of them by default) is a symbolic link;
   * a part that does not exist ends the check, as nothing below it does either.
   */
  private async refuseLinks(p: string, segments: readonly string[], upTo = segments.length): Promise<void> {
    let at = this.root;
    for (let i = 0; i < upTo; i++) {
      at = path.join(at, segments[i]!);
      let st: fs.Stats;
      try {
        st = await fsp.lstat(at);
      } catch (e) {
        if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return;
        throw this.classify(e, p);
      }
      if (st.isSymbolicLink()) throw symbolicLinkOnShare(this.location, p, segments.slice(0, i + 1).join('/'));
    }
  }

  /**
   * The folder `segments` (a prefix of p's) opened without following a link, made when missing
   * and `create`: see local-folder.ts.
   */
  private async openFolder(p: string, segments: readonly string[], create: boolean): Promise<LocalFolder> {
    return openLocalFolder(this.root, segments, create).catch((e: unknown) => {
      throw this.linkMet(e, p, segments);
    });
  }

  /** An addon's ELOOP at a folder of `segments` is the share's symbolic link there. */
  private linkMet(e: unknown, p: string, segments: readonly string[]): unknown {
    const at = (e as { segment?: number }).segment ?? -1;
    return errnoOf(e) === 'ELOOP' && at >= 0 ? symbolicLinkOnShare(this.location, p, segments.slice(0, at + 1).join('/')) : e;
  }

  /** Maps an fs error to the share error it means, or returns it unchanged. */
  private classify(e: unknown, p: string): unknown {
    const code = errnoOf(e);
    const where = p === '' ? this.location : `'${p}' on ${this.location}`;
    switch (code) {
      case 'ENOSPC':
      case 'EDQUOT':
        return shareError('ShareCapacity', `The backup folder ${this.location} is out of space (${code}).`, { targetObject: p, cause: e });
      case 'EACCES':
      case 'EPERM':
      case 'EROFS':
        return shareError('ShareAuthentication', `This account may not write ${where} (${code}).`, {
          targetObject: p,
          cause: e,
          category: 'PermissionDenied',
        });
      case 'ENOTCONN':
      case 'EHOSTDOWN':
      case 'ESTALE':
      case 'EIO':
        return shareError(
          'ShareConnectivity',
          `The folder ${this.location} is not reachable (${code}); a mounted share may have dropped.`,
          {
            targetObject: p,
            cause: e,
          },
        );
      default:
        return e;
    }
  }

  /** The root must exist: creating it would hide a wrong path or an unmounted share. */
  private async requireRoot(): Promise<void> {
    let st: fs.Stats;
    try {
      st = await fsp.stat(this.root);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') throw this.rootMissing(e);
      throw this.classify(e, '');
    }
    if (!st.isDirectory()) throw this.rootMissing();
  }

  private rootMissing(cause?: unknown): AzsError {
    return shareError('SharePath', `The backup folder ${this.location} does not exist or is not a folder.`, {
      targetObject: this.location,
      cause,
    });
  }

  private async guard<T>(p: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (e) {
      if (e instanceof AzsError) throw e;
      const mapped = this.classify(e, p);
      if (mapped === e && (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR')) {
        await this.requireRoot();
      }
      throw mapped;
    }
  }

  async write(p: string, data: Readable, options: WriteOptions = {}): Promise<{ bytes: number }> {
    const segments = splitTargetPath(p);
    const finalPath = path.join(this.root, ...segments);
    const finalName = segments[segments.length - 1]!;
    const tempName = partialNameFor(finalName);
    try {
      await this.requireRoot();
      // The file itself may be a link: the rename replaces it, never writes through it.
      await this.refuseLinks(p, segments, segments.length - 1);
    } catch (e) {
      data.destroy();
      throw e;
    }
    return this.guard(p, async () => {
      let folder: LocalFolder;
      try {
        folder = await this.openFolder(p, segments.slice(0, -1), !options.replaceOnly);
      } catch (e) {
        data.destroy();
        if (options.replaceOnly && errnoOf(e) === 'ENOENT') throw notFound(this.location, p);
        throw e;
      }
      try {
        const file = new DurableFileWriter(() => folder.createFile(tempName), FLUSH_EVERY_BYTES, recyclerOf(data));
        try {
          await pipeline(data, file);
          // A prune renames a backup's folder aside whole: gone from its path after this look, the
          // folder takes the temporary file with it (by path, the rename below fails with ENOENT).
          if (options.replaceOnly && (await fsp.lstat(finalPath).catch(() => undefined)) === undefined) throw notFound(this.location, p);
          await folder.rename(tempName, folder, finalName);
        } catch (e) {
          // A source that fails at once rejects the pipeline before the file is even opened: remove
          // it only once the writer has closed, or the open would make it after the removal.
          if (!file.closed) await once(file, 'close').catch(() => {});
          await folder.remove(tempName).catch(() => {});
          if (options.replaceOnly && errnoOf(e) === 'ENOENT') throw notFound(this.location, p);
          throw e;
        }
        await folder.sync();
        return { bytes: file.bytes };
      } finally {
        await folder.close();
      }
    });
  }

  async read(p: string): Promise<Readable> {
    const segments = splitTargetPath(p);
    const abs = path.join(this.root, ...segments);
    return this.guard(p, async () => {
      await this.refuseLinks(p, segments, segments.length - 1);
      let handle: fsp.FileHandle;
      try {
        // O_NONBLOCK (no effect on a regular file): a FIFO put in a file's place would otherwise hold
        // the open, and the command, until some writer came; it is refused below instead.
        handle = await fsp.open(abs, OPEN_NO_FOLLOW | fs.constants.O_NONBLOCK);
      } catch (e) {
        if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') {
          await this.requireRoot();
          throw notFound(this.location, p);
        }
        if (errnoOf(e) === 'ELOOP') throw symbolicLinkOnShare(this.location, p, p);
        throw e;
      }
      const st = await handle.stat();
      if (st.isDirectory()) {
        await handle.close();
        throw notFound(this.location, p);
      }
      try {
        checkKind(st, handle.fd, abs, shareFileLimit(this.location, st.size));
      } catch (e) {
        await handle.close();
        throw e;
      }
      // 1 MiB reads (a quarter less time than 64 KiB ones), three in flight (see read-ahead.ts).
      return readAhead(handle, st.size, { pieceBytes: 1024 * 1024, depth: 3 });
    });
  }

  async list(p: string): Promise<TargetEntry[]> {
    const segments = splitTargetPath(p, { allowRoot: true });
    const abs = path.join(this.root, ...segments);
    if (p === '') await this.requireRoot();
    return this.guard(p, async () => {
      await this.refuseLinks(p, segments);
      let names: string[];
      try {
        names = await fsp.readdir(abs);
      } catch (e) {
        if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') {
          await this.requireRoot();
          return [];
        }
        throw e;
      }
      const entries: TargetEntry[] = [];
      for (const name of names) {
        // '\\' is an ordinary character here but no target path holds it: another writer's such
        // name, listed, would be refused when handed back, stopping whatever walks the folder.
        if (!isTargetPath(name)) continue;
        const st = await fsp.lstat(path.join(abs, name)).catch(() => undefined);
        // A link lists as what it is (lstat), not as what it points at: never descended into, refused
        // when read through, and removable (prune deletes a stray one as a leftover).
        if (st) entries.push(entryOf(name, st));
      }
      return entries;
    });
  }

  async listTree(p: string): Promise<TreeEntry[]> {
    const tree: TreeEntry[] = [];
    const walk = async (rel: string): Promise<void> => {
      for (const entry of await this.list([p, rel].filter(Boolean).join('/'))) {
        const below = rel === '' ? entry.name : `${rel}/${entry.name}`;
        tree.push({ ...entry, path: below });
        if (entry.isDirectory) await walk(below);
      }
    };
    await walk('');
    return tree;
  }

  async readSmallFiles(paths: readonly string[], maxBytes = SMALL_FILE_MAX_BYTES): Promise<(Buffer | AzsError | undefined)[]> {
    const files: (Buffer | AzsError | undefined)[] = new Array(paths.length);
    const read = (p: string) =>
      this.guard(p, async () => {
        const segments = splitTargetPath(p);
        try {
          await this.refuseLinks(p, segments);
        } catch (e) {
          if (e instanceof AzsError && e.errorId === SYMBOLIC_LINK_ID) return e;
          throw e;
        }
        return readFileBounded(path.join(this.root, ...segments), shareFileLimit(this.location, maxBytes), {
          noFollow: true,
        }).catch((e: unknown) => {
          if (isMissingFile(e)) return undefined;
          if (isRefusedFile(e)) return e;
          const cause = (e as AzsError).cause ?? e;
          // Made a link since it was checked.
          if (errnoOf(cause) === 'ELOOP') return symbolicLinkOnShare(this.location, p, p);
          // EACCES, EIO, ...: what they mean for the share (guard).
          throw cause;
        });
      });
    // A few at once: each is five calls through the thread pool (open, stat, two reads, close), and
    // one after another they made the index load of a share with 33 index files wait 20-40 ms.
    let next = 0;
    const reader = async (): Promise<void> => {
      while (next < paths.length) {
        const i = next++;
        files[i] = await read(paths[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SMALL_READS_AT_ONCE, paths.length) }, reader));
    if (files.includes(undefined)) await this.requireRoot();
    return files;
  }

  async stat(p: string): Promise<TargetEntry | undefined> {
    const segments = splitTargetPath(p, { allowRoot: true });
    const abs = path.join(this.root, ...segments);
    if (p === '') await this.requireRoot();
    return this.guard(p, async () => {
      await this.refuseLinks(p, segments);
      try {
        // The root is followed (the operator's own link); what lies below it is not.
        return entryOf(path.basename(abs), p === '' ? await fsp.stat(abs) : await fsp.lstat(abs));
      } catch (e) {
        if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') {
          await this.requireRoot();
          return undefined;
        }
        throw e;
      }
    });
  }

  async rename(from: string, to: string): Promise<void> {
    const fromSegments = splitTargetPath(from);
    const toSegments = splitTargetPath(to);
    const fromName = fromSegments[fromSegments.length - 1]!;
    const toName = toSegments[toSegments.length - 1]!;
    await this.requireRoot();
    return this.guard(from, async () => {
      // Either name may itself be a link: rename moves the link, never what it points at.
      await this.refuseLinks(from, fromSegments, fromSegments.length - 1);
      await this.refuseLinks(to, toSegments, toSegments.length - 1);
      const source = await this.openFolder(from, fromSegments.slice(0, -1), false).catch((e: unknown) => {
        if (errnoOf(e) === 'ENOENT') throw notFound(this.location, from);
        throw e;
      });
      try {
        const kind = await source.kind(fromName);
        if (kind === undefined) throw notFound(this.location, from);
        // fs.rename silently replaces files and empty folders; the interface promises it does not.
        // (Its folders are made before that look: a name that exists has them already.)
        const dest = await this.openFolder(to, toSegments.slice(0, -1), true);
        try {
          if ((await dest.kind(toName)) !== undefined) throw alreadyExists(this.location, to);
          // The name is taken in one step that fails when it exists (a file by link(), a folder by
          // renameat2(RENAME_NOREPLACE)): a check and then a rename would let two writers that both
          // passed the check replace each other's entry.
          const taken =
            kind === 'directory'
              ? await source.renameUnlessExists(fromName, dest, toName)
              : await linkInPlace(source, fromName, dest, toName);
          if (taken === 'exists') throw alreadyExists(this.location, to);
          if (taken === 'linked') await source.remove(fromName);
          if (taken === 'unsupported') await renameChecked(source, fromName, dest, toName, () => alreadyExists(this.location, to));
          await dest.sync();
        } finally {
          await dest.close();
        }
      } finally {
        await source.close();
      }
    });
  }

  /**
   * Removes the file or folder, and fsyncs the folder that held it: a removal callers order
   * (prune deletes the superseded index files before the packs they name) reaches the disk before
   * whatever they do next, or a power cut could bring back an index file whose pack is gone.
   */
  async delete(p: string): Promise<void> {
    const segments = splitTargetPath(p);
    await this.guard(p, async () => {
      // The entry itself may be a link: it is removed, never followed.
      await this.refuseLinks(p, segments, segments.length - 1);
      let folder: LocalFolder;
      try {
        folder = await this.openFolder(p, segments.slice(0, -1), false);
      } catch (e) {
        if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return; // nothing there to remove
        throw e;
      }
      try {
        await folder.removeTree(segments[segments.length - 1]!);
        await folder.sync().catch(() => {}); // the folder itself may be gone: nothing to sync
      } finally {
        await folder.close();
      }
    });
  }

  async mkdir(p: string): Promise<void> {
    const segments = splitTargetPath(p);
    await this.requireRoot();
    await this.guard(p, async () => {
      await this.refuseLinks(p, segments);
      await (await this.openFolder(p, segments, true)).close();
    });
  }

  async freeSpace(): Promise<FreeSpace> {
    await this.requireRoot();
    return this.guard('', async () => {
      const s = await fsp.statfs(this.root);
      return { available: s.bavail * s.bsize, total: s.blocks * s.bsize };
    });
  }
}

const OPEN_NO_FOLLOW = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW;

function entryOf(name: string, st: fs.Stats): TargetEntry {
  return { name, isDirectory: st.isDirectory(), size: st.isDirectory() ? 0 : st.size, mtime: st.mtime };
}

/**
 * Gives the file `name` the name `toName` too, atomically and only if that does not exist;
 * 'unsupported' where the file system has no hard links (some mounted shares), for the caller to
 * rename instead.
 */
async function linkInPlace(
  source: LocalFolder,
  name: string,
  dest: LocalFolder,
  toName: string,
): Promise<'linked' | 'exists' | 'unsupported'> {
  try {
    await source.link(name, dest, toName);
    return 'linked';
  } catch (e) {
    if (errnoOf(e) === 'EEXIST') return 'exists';
    if (['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK', 'ENOSYS'].includes(errnoOf(e) ?? '')) return 'unsupported';
    throw e;
  }
}

/**
 * rename(2) where no one-step way exists: an existing non-empty folder in the way fails it
 * (ENOTEMPTY, EEXIST), and that is the interface's "exists", not a raw error.
 */
async function renameChecked(source: LocalFolder, name: string, dest: LocalFolder, toName: string, exists: () => Error): Promise<void> {
  try {
    await source.rename(name, dest, toName);
  } catch (e) {
    if (['ENOTEMPTY', 'EEXIST', 'ENOTDIR', 'EISDIR'].includes(errnoOf(e) ?? '')) throw exists();
    throw e;
  }
}
