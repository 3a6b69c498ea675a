import { rmSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { currentOwner, ownerTag, parseOwnerTag, provablyDead } from './owner.js';

/**
 * Where a process keeps plaintext that must not outlive it: the SQLite snapshot a backup streams,
 * the SMB auth file (the share password), files fetched from a share. Never TMPDIR, which others
 * can list and which a kill -9 leaves as it is: `<AZSBACKUP_HOME>/private/<owner tag>/`, both
 * folders 0700. The process removes its folder when it exits; a kill -9 leaves it, and the next
 * command of that home removes the folders of processes that are provably dead
 * (src/process/owner.ts), never a running job's, also when one of them runs in a container (its
 * own PID namespace) that shares this home.
 */

export const PRIVATE_FOLDER = 'private';

/** This process's private folder under `home` (not created here). */
export function privateDirOf(home: string): string {
  const me = currentOwner();
  // Without /proc the folder cannot be proven abandoned later: its name says so, and it is never swept.
  return path.join(home, PRIVATE_FOLDER, me ? ownerTag(me) : `untracked-${process.pid}`);
}

const made = new Set<string>();
process.once('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** Creates `dir` (a privateDirOf folder, or any folder to keep private) with mode 0700; returns it. */
export async function ensurePrivateDir(dir: string): Promise<string> {
  if (!made.has(dir)) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    made.add(dir);
  }
  return dir;
}

/** Removes the private folders of dead processes under `home`; returns the ones removed. */
export async function sweepPrivateDirs(home: string): Promise<string[]> {
  const root = path.join(home, PRIVATE_FOLDER);
  const removed: string[] = [];
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!provablyDead(parseOwnerTag(name))) continue;
    await rm(path.join(root, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
