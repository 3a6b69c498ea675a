import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AzsError, ExitCode } from '../errors.js';
import { ensurePrivateDir } from '../process/private-dir.js';
import type { Target } from '../targets/target.js';

/**
 * A share whose files read the same the second time as the first. A restore that must check a role
 * whole before it may change anything (a program that imports as it reads; roles restored inside
 * one another) reads the role twice: once to check it, once to import it. Whoever can write to the
 * share could change the data between the two reads, and the import would start on data the check
 * never saw and fail half way, with the destination already changed. So each file is copied, the
 * first time it is read, into a private local folder, and every read is served from that copy. What
 * is kept is what the share holds: role files, catalogs and packs, all encrypted.
 */
export interface SpooledTarget {
  target: Target;
  /** Removes the local copies. */
  discard(): Promise<void>;
}

/** `inner` read through local copies kept in a new folder below `privateDir` (this process's, 0700), or in TMPDIR. */
export function spooledTarget(inner: Target, privateDir?: string): SpooledTarget {
  let folder: Promise<string> | undefined;
  const copies = new Map<string, Promise<string>>();
  // Names for the local copies, never reused: a failed copy leaves the map, and its size with it.
  let made = 0;
  const folderOnce = (): Promise<string> =>
    (folder ??= (async () => {
      const parent = privateDir ? await ensurePrivateDir(privateDir) : os.tmpdir();
      return mkdtemp(path.join(parent, 'restore-copies-'));
    })());
  const copyOf = (p: string): Promise<string> => {
    let copy = copies.get(p);
    if (!copy) {
      copy = keepCopy(inner, p, folderOnce, made++);
      copies.set(p, copy);
      // A failed copy is not kept: the next read tries the share again and fails as it fails.
      copy.catch(() => copies.delete(p));
    }
    return copy;
  };
  const target = new Proxy(inner, {
    get(t, key, receiver) {
      if (key === 'read') return async (p: string): Promise<Readable> => createReadStream(await copyOf(p), { highWaterMark: 1 << 20 });
      const value = Reflect.get(t, key, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
    },
  });
  return {
    target,
    async discard() {
      if (folder) await rm(await folder.catch(() => ''), { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

async function keepCopy(inner: Target, p: string, folderOnce: () => Promise<string>, n: number): Promise<string> {
  const local = path.join(await folderOnce(), String(n));
  const data = await inner.read(p);
  try {
    await pipeline(data, createWriteStream(local, { mode: 0o600 }));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new AzsError(
        `The restore keeps a local copy of what it checks, and there is no room for '${p}' in ${path.dirname(local)}; nothing was changed.`,
        {
          errorId: 'RestoreCopyNoSpace',
          category: 'ResourceUnavailable',
          // A full disk, as everywhere: ResourceUnavailable alone would make it exit 10, "not found".
          exitCode: ExitCode.Capacity,
          targetObject: p,
          cause: e,
          recommendedAction:
            'Free space in AZSBACKUP_HOME (about the stored size of the roles restored into a program or into one another), then restore again.',
        },
      );
    }
    throw e;
  }
  return local;
}
