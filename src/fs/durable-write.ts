import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * The one way we write a small file whole: keys, the sealing key, alerts, job records, locks.
 * (The local target streams large files through DurableFileWriter and ends with syncDirectory.)
 */

export interface WriteWholeOptions {
  /** Permission bits of the new file, from the moment it exists (less the umask). */
  mode: number;
  /**
   * true: rename over whatever is at the path (a symbolic link there is replaced, not followed);
   * false: link into place, failing with EEXIST when the path exists (another process was first).
   */
  replace: boolean;
  /**
   * true (the default): fsync the file before it takes its name and the folder after, so a power
   * cut leaves the old content or the new one under the name. false: only atomic, for state a
   * crash may lose (a progress record, a lock whose holder a reboot ends anyway).
   */
  durable?: boolean;
}

/**
 * Writes `data` to a new temporary file beside `file` and puts it in place in one step, so a
 * reader never sees the file empty or half written. The temporary file never outlives the call.
 */
export function writeFileWhole(file: string, data: string | Uint8Array, { mode, replace, durable = true }: WriteWholeOptions): void {
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', mode);
  try {
    try {
      writeFileSync(fd, data);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (replace) renameSync(temp, file);
    else linkSync(temp, file);
  } finally {
    rmSync(temp, { force: true });
  }
  if (durable) syncDirectorySync(dirname(file));
}

/** Makes a rename or link in `dir` durable: the new directory entry reaches the disk, not just the file's data. */
export async function syncDirectory(dir: string): Promise<void> {
  const h = await fsp.open(dir, 'r');
  try {
    await h.sync();
  } catch {
    // Some file systems (network mounts) refuse fsync on a directory; the data itself is synced.
  } finally {
    await h.close();
  }
}

function syncDirectorySync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } catch {
    // As in syncDirectory.
  } finally {
    closeSync(fd);
  }
}
