import type { Readable } from 'node:stream';
import type { AzsError } from '../errors.js';

/**
 * A place backups are stored: a local folder, an SMB share or a blob container. Every target implements this small
 * interface and passes the one conformance suite in test/targets.conformance.test.ts.
 *
 * Paths are relative to the target's root, use `/` as separator, and never contain `..`.
 * Errors are AzsError: ObjectNotFound for a missing path, and for share problems the alertType
 * (ShareConnectivity, SharePath, ShareAuthentication, ShareCapacity) with its exit code.
 * (The built-in targets also take part in buffer recycling, an optional performance capability
 * of the streams they are given and return: src/memory/recycling-readable.ts. A new target need not.)
 */
export interface TargetEntry {
  /** The entry's own name (last path segment). */
  name: string;
  isDirectory: boolean;
  size: number;
  mtime: Date;
}

export interface TreeEntry extends TargetEntry {
  /** The entry's path below the listed folder, '/'-separated (e.g. `20261127T071531Z/<guid>/BackupInfo.xml`). */
  path: string;
}

export interface FreeSpace {
  /** Bytes the target can still take. */
  available: number;
  /** Total size of the volume, in bytes. */
  total: number;
  /** false when the storage does not tell (a blob account): the figures are its limit, not what is free. */
  known?: boolean;
}

export interface WriteOptions {
  /**
   * false when the caller commits the file itself, because it lies in a folder that is renamed
   * into place only once complete (a backup's `.partial` folder). The target may then write it in
   * place: on SMB that saves a round trip (the rename) per file. A failed write then removes what
   * it wrote where it can (a file it replaced is lost), and never leaves a file that looks
   * complete. Default true; a target may always write atomically (the local folder does: there a
   * rename costs nothing).
   */
  atomic?: boolean;
  /**
   * The file must be there already: it is replaced, never made, nor its folder; when it is gone the
   * write fails with TargetObjectNotFound and leaves nothing. For the rewrite of a committed
   * backup's file, which a prune on another machine may remove meanwhile: made again, it would list
   * as a backup holding nothing else. (A folder, on SMB, is removed whole: a file whose folder is
   * gone is gone.)
   */
  replaceOnly?: boolean;
}

export interface Target {
  /** A description for messages: the path or UNC, never a secret. */
  readonly location: string;
  /**
   * Stream `data` into the file at `path`, creating parent folders; resolves once it is all stored.
   * The file appears, or replaces an existing one, in one atomic step at the end: a reader sees the
   * old file or the whole new one, never a part and never nothing (unless `atomic: false`).
   */
  write(path: string, data: Readable, options?: WriteOptions): Promise<{ bytes: number }>;
  /** The file at `path` as a stream; rejects with ObjectNotFound when it is missing. */
  read(path: string): Promise<Readable>;
  /** The entries of the folder at `path` ('' is the root); [] when the folder does not exist. */
  list(path: string): Promise<TargetEntry[]>;
  /**
   * Every entry below the folder at `path`, at any depth, in one round trip where the storage
   * allows (a catalog of many backups is then one request on SMB, not three per backup); [] when
   * the folder does not exist.
   */
  listTree(path: string): Promise<TreeEntry[]>;
  /**
   * Small files read whole, in one round trip where the storage allows; undefined for each one
   * that does not exist, and an AzsError (FileTooLarge, NotARegularFile) for one that is larger than
   * maxBytes or is not a regular file (a folder; on a local folder also a FIFO or a device, however
   * reached): at most maxBytes + 1 bytes of any file are read. For catalog documents of a few KB,
   * never for role data.
   */
  readSmallFiles(paths: readonly string[], maxBytes?: number): Promise<(Buffer | AzsError | undefined)[]>;
  /** The entry at `path`, or undefined when it does not exist. */
  stat(path: string): Promise<TargetEntry | undefined>;
  /** Rename a file or folder; the destination must not exist. Atomic where the storage allows. */
  rename(from: string, to: string): Promise<void>;
  /** Delete a file, or a folder with everything in it; no error when it does not exist. */
  delete(path: string): Promise<void>;
  /** Make a folder and its parents; no error when it exists. */
  mkdir(path: string): Promise<void>;
  freeSpace(): Promise<FreeSpace>;
  /**
   * True where `rename` copies every file and deletes the originals (a blob container): not atomic,
   * and costly. A backup is then written under its final name and committed by its BackupInfo.xml,
   * written last, and removed by deleting that file first.
   */
  readonly renameCopies?: boolean;
}
