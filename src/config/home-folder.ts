import { accessSync, chmodSync, constants, mkdirSync, readdirSync, realpathSync, type Stats, statSync } from 'node:fs';
import path from 'node:path';
import { AzsError, ExitCode } from '../errors.js';
import { fileError } from '../io/bounded-read.js';

/**
 * AZSBACKUP_HOME, the folder of configuration and state. Made owner-only on first write; a home
 * that is a file, or that this account may not write, is the operator's to fix, and is said so
 * (never an internal error).
 *
 * It holds the sealing key, the sealed secrets, the role catalog (commands a backup runs), job
 * records and the files cache: whoever may put a file there, or put another folder in its place,
 * steers what this account does and may read what it seals. So before anything in it is read or
 * written, the home must be this account's, not writable by others unless empty, and every folder
 * on the way to it (as given, and where links lead) must be owned by root or this account and not
 * writable by others (the sticky bit, as on /tmp, keeps others from moving what is not theirs).
 */

const REMEDY = (home: string) =>
  `Point AZSBACKUP_HOME at a folder this account may write (it is made if missing), or fix the one at ${home}: it must be a folder, writable by this account, on a file system with room.`;

export function homeIsAFile(home: string): boolean {
  try {
    return !statSync(home).isDirectory();
  } catch {
    return false;
  }
}

/** A failure to use the home folder (or a file in it) as the AzsError it means. */
export function homeError(e: unknown, home: string): AzsError {
  if (homeIsAFile(home)) {
    return new AzsError(`AZSBACKUP_HOME (${home}) is a file, not a folder.`, {
      errorId: 'HomeNotAFolder',
      category: 'InvalidArgument',
      exitCode: ExitCode.Usage,
      targetObject: home,
      recommendedAction: REMEDY(home),
    });
  }
  const mapped = fileError(e, home, { what: 'AZSBACKUP_HOME folder', remediation: REMEDY(home), exitCode: ExitCode.Failure }, 'write');
  return new AzsError(mapped.message, {
    errorId: mapped.errorId === 'InsufficientSpace' ? mapped.errorId : 'HomeNotWritable',
    category: mapped.category,
    exitCode: mapped.exitCode,
    targetObject: home,
    recommendedAction: REMEDY(home),
    cause: e,
  });
}

/** Makes the home folder (owner-only) if it is missing, and checks this account may write it. */
export function makeHome(home: string): void {
  checkFoldersAbove(home);
  try {
    mkdirSync(home, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw homeError(e, home);
  }
  checkHomeItself(home);
  try {
    chmodSync(home, 0o700);
    accessSync(home, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw homeError(e, home);
  }
}

/**
 * Refuses a home (when it exists) that an account other than this one and root may change, or put
 * another folder in the place of: before a command reads anything in it. makeHome checks the same.
 */
export function checkHome(home: string): void {
  if (statSync(home, { throwIfNoEntry: false }) === undefined) return;
  checkFoldersAbove(home);
  checkHomeItself(home);
}

/** This process's account, or undefined where there are no POSIX owners (Windows). */
function account(): { uid: number; gid: number } | undefined {
  return process.geteuid && process.getegid ? { uid: process.geteuid(), gid: process.getegid() } : undefined;
}

/** What lets an account other than `me` and root add, remove or rename entries in the folder `st`; undefined when nothing does. */
function othersMayChange(st: Stats, me: { uid: number; gid: number }, stickyProtects: boolean): string | undefined {
  if (st.uid !== me.uid && st.uid !== 0) return `it belongs to uid ${st.uid}`;
  if (stickyProtects && st.mode & 0o1000) return undefined;
  const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
  if (st.mode & 0o002) return `other accounts may write in it (mode ${mode})`;
  if (st.mode & 0o020 && st.gid !== 0 && st.gid !== me.gid) return `the group ${st.gid} may write in it (mode ${mode})`;
  return undefined;
}

/** The folder `dir` and every folder above it, where each really is. */
function withAncestors(dir: string, into: Set<string>): void {
  for (let p = dir; !into.has(p); p = path.dirname(p)) {
    into.add(p);
    if (p === path.dirname(p)) return;
  }
}

/** Every folder on the way to `home` that exists: those above it as given, and those above where a link leads. */
function foldersAbove(home: string): Set<string> {
  const folders = new Set<string>();
  const abs = path.resolve(home);
  for (let p = abs; p !== path.dirname(p); ) {
    p = path.dirname(p);
    try {
      withAncestors(realpathSync(p), folders);
    } catch {
      // Missing (made by makeHome, as this account's), or not ours to look at (then not ours to reach).
    }
  }
  try {
    withAncestors(path.dirname(realpathSync(abs)), folders);
  } catch {
    // Missing: its folder is among those above.
  }
  return folders;
}

function checkFoldersAbove(home: string): void {
  const me = account();
  if (!me) return;
  for (const dir of foldersAbove(home)) {
    const st = statSync(dir, { throwIfNoEntry: false });
    const why = st && othersMayChange(st, me, true);
    if (!why) continue;
    throw new AzsError(
      `AZSBACKUP_HOME (${home}) lies in ${dir}, and ${why}: another account could move the home aside and put a folder of its own in its place, with a configuration and sealing key of its choosing. Nothing was read or written.`,
      {
        errorId: 'HomeParentUnsafe',
        category: 'PermissionDenied',
        exitCode: ExitCode.Failure,
        targetObject: dir,
        recommendedAction: `Make ${dir} owned by root or this account and writable only by its owner (chown root '${dir}'; chmod go-w '${dir}', or chmod +t for a folder every account shares, as /tmp), or move the home into such a folder (mv '${home}' /var/lib/azsbackup) and point AZSBACKUP_HOME there.`,
      },
    );
  }
}

function checkHomeItself(home: string): void {
  const me = account();
  if (!me) return;
  let st: Stats;
  try {
    st = statSync(home);
  } catch (e) {
    throw homeError(e, home);
  }
  if (st.isDirectory() && st.uid !== me.uid) {
    throw new AzsError(
      `AZSBACKUP_HOME (${home}) belongs to uid ${st.uid}, not to this account (uid ${me.uid}): that account could put a sealing key, a configuration or job records of its choosing there, and steer or read what this one seals. Nothing was read or written.`,
      {
        errorId: 'HomeNotOwned',
        category: 'PermissionDenied',
        exitCode: ExitCode.Failure,
        targetObject: home,
        recommendedAction: `If it is this service's own folder, made by another account by mistake, check that everything in it is this service's (ls -la '${home}'), then give it to this account: chown -R ${me.uid}:${me.gid} '${home}'. Otherwise point AZSBACKUP_HOME at a folder of this account's (it is made if missing).`,
      },
    );
  }
  const why = st.isDirectory() ? othersMayChange(st, me, false) : undefined;
  if (!why) return;
  // Nothing anyone could have put there yet: made owner-only now (makeHome), as a new home is.
  if (readdirSync(home).length === 0) return;
  throw new AzsError(
    `AZSBACKUP_HOME (${home}) is not empty, and ${why}: what is in it may not be this service's. Nothing was read or written.`,
    {
      errorId: 'HomeNotPrivate',
      category: 'PermissionDenied',
      exitCode: ExitCode.Failure,
      targetObject: home,
      recommendedAction: `Check each file in it (ls -la '${home}'): remove what this service did not make (a seal.key or config.json of unknown origin, a link), then chmod 0700 '${home}'.`,
    },
  );
}
