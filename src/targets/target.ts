import type { Readable } from 'node:stream';

/**
 * A place backups are stored: a local folder or an SMB share. Every target implements this small
 * interface and passes the one conformance suite in test/targets.conformance.test.ts.
 *
 * Paths are relative to the target's root, use `/` as separator, and never contain `..`.
 * Errors are AzsError: ObjectNotFound for a missing path, and for share problems the alertType
 * (ShareConnectivity, SharePath, ShareAuthentication, ShareCapacity) with its exit code.
 */
export interface TargetEntry {
  /** The entry's own name (last path segment). */
  name: string;
  isDirectory: boolean;
  size: number;
  mtime: Date;
}

export interface FreeSpace {
  /** Bytes the target can still take. */
  available: number;
  /** Total size of the volume, in bytes. */
  total: number;
}

export interface Target {
  /** A description for messages: the path or UNC, never a secret. */
  readonly location: string;
  /** Stream `data` into the file at `path`, creating parent folders; resolves once it is all stored. */
  write(path: string, data: Readable): Promise<{ bytes: number }>;
  /** The file at `path` as a stream; rejects with ObjectNotFound when it is missing. */
  read(path: string): Promise<Readable>;
  /** The entries of the folder at `path` ('' is the root); [] when the folder does not exist. */
  list(path: string): Promise<TargetEntry[]>;
  /** The entry at `path`, or undefined when it does not exist. */
  stat(path: string): Promise<TargetEntry | undefined>;
  /** Rename a file or folder; the destination must not exist. Atomic where the storage allows. */
  rename(from: string, to: string): Promise<void>;
  /** Delete a file, or a folder with everything in it; no error when it does not exist. */
  delete(path: string): Promise<void>;
  /** Make a folder and its parents; no error when it exists. */
  mkdir(path: string): Promise<void>;
  freeSpace(): Promise<FreeSpace>;
}
