import { statSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { AzsError, ExitCode } from '../errors.js';
import { writeFileWhole } from '../fs/durable-write.js';
import { fileError, readFileBoundedSync } from '../io/bounded-read.js';
import { aliveInPidNamespace, pidNamespace, startTimeOf } from '../process/owner.js';

/**
 * An exclusive lock held as a file created with O_EXCL. The file names its holder (pid and the
 * process's start time, so a recycled pid is not mistaken for the holder); a lock whose holder is
 * dead is stale and is taken over. Used for the one-job-at-a-time rule and around configuration
 * read-modify-write cycles.
 */

export interface LockOwner {
  pid: number;
  /** Kernel start time of the process (clock ticks since boot), guards against pid reuse. */
  startTime: string | null;
  hostname: string;
  /**
   * The PID namespace `pid` is numbered in (owner.ts pidNamespace); absent in locks of earlier
   * versions, which are judged as this process's own.
   */
  pidNamespace?: string;
  acquiredAt: string;
  /** What holds it: "backup 6f1c...", "configuration". */
  purpose: string;
}

export interface HeldLock {
  readonly path: string;
  /** Hand the lock to another process (a detached job runner). */
  transferTo(pid: number): void;
  release(): void;
}

export function processStartTime(pid: number): string | null {
  return startTimeOf(pid) ?? null;
}

/**
 * How long a lock taken on another host, or in a PID namespace this process cannot see into (the
 * host seen from a container, another container), is trusted, since its process cannot be checked
 * from here: a configuration change holds its lock for milliseconds, a backup job not for a day.
 * The usual cause is this host's own name having changed (a container restarted), and without a
 * limit its lock would never be taken over.
 */
const FOREIGN_LOCK_TRUST_MS = { configuration: 10 * 60_000, other: 24 * 3_600_000 };

export function isAlive(
  owner: Pick<LockOwner, 'pid' | 'startTime' | 'hostname'> & Partial<Pick<LockOwner, 'acquiredAt' | 'purpose' | 'pidNamespace'>>,
): boolean {
  if (owner.hostname !== hostname()) return trustedForAWhile(owner);
  // Another PID namespace of this host (a container that shares its name): its pid is another
  // process here, or none. Looking it up here broke live locks as stale.
  if (owner.pidNamespace !== undefined && owner.pidNamespace !== pidNamespace()) {
    return aliveInPidNamespace(owner.pidNamespace, owner.pid, owner.startTime) ?? trustedForAWhile(owner);
  }
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const start = processStartTime(owner.pid);
  return owner.startTime === null || start === null || start === owner.startTime;
}

/** A holder whose process cannot be checked from here is taken for alive until FOREIGN_LOCK_TRUST_MS has passed. */
function trustedForAWhile(owner: Partial<Pick<LockOwner, 'acquiredAt' | 'purpose'>>): boolean {
  const taken = owner.acquiredAt ? Date.parse(owner.acquiredAt) : NaN;
  if (Number.isNaN(taken)) return true; // cannot tell; assume alive
  return Date.now() - taken < (owner.purpose === 'configuration' ? FOREIGN_LOCK_TRUST_MS.configuration : FOREIGN_LOCK_TRUST_MS.other);
}

/** Whether `owner` runs where this process cannot check it (another host, another PID namespace). */
export function outOfSight(owner: Pick<LockOwner, 'hostname'> & Partial<Pick<LockOwner, 'pidNamespace'>>): boolean {
  return owner.hostname !== hostname() || (owner.pidNamespace !== undefined && owner.pidNamespace !== pidNamespace());
}

function ownerFor(pid: number, purpose: string): LockOwner {
  // `pid` is this process or one it started: both in this process's PID namespace.
  const ns = pidNamespace();
  return {
    pid,
    startTime: processStartTime(pid),
    hostname: hostname(),
    ...(ns ? { pidNamespace: ns } : {}),
    acquiredAt: new Date().toISOString(),
    purpose,
  };
}

/** A lock file is one short JSON line; anything larger is not one of ours. */
const MAX_LOCK_BYTES = 64 * 1024;

export function readLockOwner(path: string): LockOwner | undefined {
  try {
    const text = readFileBoundedSync(path, {
      what: 'lock file',
      maxBytes: MAX_LOCK_BYTES,
      remediation: 'Remove the lock file once no AzsBackup command runs.',
    });
    return JSON.parse(text.toString('utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

function youngerThan(path: string, ms: number): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs < ms;
  } catch {
    return false;
  }
}

/** Creates the lock with its content in one step (link fails when it exists), so no reader sees it empty. */
function createExclusive(path: string, owner: LockOwner): boolean {
  try {
    // Not fsynced: after a power cut its holder is gone, and a lock of a dead process is stale.
    writeFileWhole(path, JSON.stringify(owner), { mode: 0o600, replace: false, durable: false });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/**
 * Removes the lock at `path` if it is still the stale one `seen` (undefined: unreadable, and old).
 * Breakers take turns through a second lock, `<path>.breaking`, so that between reading the lock
 * again and removing it nobody else can remove it (its dead holder cannot), and a live holder's
 * lock is never touched: moving whatever lay at `path` aside and putting a live lock back, as this
 * once did, let a third process take the lock in between, and two held it. False when another
 * process is breaking it now (try again).
 */
export function breakStale(path: string, seen: LockOwner | undefined): boolean {
  const breaker = `${path}.breaking`;
  if (!createExclusive(breaker, ownerFor(process.pid, 'breaking a stale lock'))) {
    removeStaleBreaker(breaker);
    return false;
  }
  try {
    const now = readLockOwner(path);
    const same =
      seen === undefined ? now === undefined && !youngerThan(path, 5_000) : now?.pid === seen.pid && now.acquiredAt === seen.acquiredAt;
    if (same && !(now && isAlive(now))) {
      try {
        unlinkSync(path);
      } catch {
        /* already gone */
      }
    }
    return true;
  } finally {
    try {
      unlinkSync(breaker);
    } catch {
      /* gone: only a breaker that judged this process dead removes it */
    }
  }
}

/**
 * A breaker killed in its few microseconds between taking `<path>.breaking` and letting it go
 * leaves it behind: it goes once its holder is dead, or unreadable and old.
 */
function removeStaleBreaker(breaker: string): void {
  const holder = readLockOwner(breaker);
  if (holder ? isAlive(holder) : youngerThan(breaker, 5_000)) return;
  try {
    unlinkSync(breaker);
  } catch {
    /* already gone */
  }
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

export interface TryLockResult {
  lock?: HeldLock;
  holder?: LockOwner;
}

/** Takes the lock if it is free or stale; otherwise returns its live holder. */
export function tryLock(path: string, purpose: string): TryLockResult {
  for (let attempt = 0; attempt < 5; attempt++) {
    const mine = ownerFor(process.pid, purpose);
    if (createExclusive(path, mine)) return { lock: heldLock(path, mine) };
    const holder = readLockOwner(path);
    if (holder && isAlive(holder)) return { holder };
    // An unreadable lock may be one its creator has not written yet: only an old one is stale.
    if (!holder && youngerThan(path, 5_000))
      return { holder: { pid: 0, startTime: null, hostname: hostname(), acquiredAt: '', purpose: 'a process that is starting' } };
    // Another process is breaking it: that takes microseconds.
    if (!breakStale(path, holder)) Atomics.wait(PAUSE, 0, 0, 5);
  }
  return { holder: readLockOwner(path) };
}

function heldLock(path: string, initial: LockOwner): HeldLock {
  let owner = initial;
  let released = false;
  return {
    path,
    transferTo(pid: number) {
      owner = ownerFor(pid, owner.purpose);
      writeFileWhole(path, JSON.stringify(owner), { mode: 0o600, replace: true, durable: false });
      released = true; // no longer ours to release
    },
    release() {
      if (released) return;
      released = true;
      const current = readLockOwner(path);
      if (current && current.pid === owner.pid && current.acquiredAt === owner.acquiredAt) {
        try {
          unlinkSync(path);
        } catch {
          /* gone */
        }
      }
    },
  };
}

/**
 * tryLock, its file system's failures (a full disk: the lock is a file written whole) said as what
 * they are: unmapped, they reached the operator as an internal error with a stack trace.
 */
function tryLockOrSay(path: string, purpose: string): TryLockResult {
  try {
    return tryLock(path, purpose);
  } catch (e) {
    throw fileError(
      e,
      path,
      {
        what: 'lock file',
        remediation: `Make room on the file system that holds ${dirname(path)}, or let this account write there; then run the command again.`,
        exitCode: ExitCode.Failure,
      },
      'write',
    );
  }
}

/** Waits (briefly) for a short-lived lock such as the configuration's. */
export async function withLock<T>(path: string, purpose: string, fn: () => Promise<T> | T, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { lock, holder } = tryLockOrSay(path, purpose);
    if (lock) {
      try {
        return await fn();
      } finally {
        lock.release();
      }
    }
    if (Date.now() > deadline) {
      throw new AzsError(`Timed out waiting for the lock ${path}, held by process ${holder?.pid} (${holder?.purpose}).`, {
        errorId: 'LockTimeout',
        category: 'ResourceBusy',
        targetObject: path,
        recommendedAction: 'Wait for the other AzsBackup command to finish, then try again.',
      });
    }
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
  }
}

/**
 * Takes over a lock another process handed to this one (HeldLock.transferTo): waits for the
 * hand-over as long as the process that holds the lock meanwhile (the one that started this one)
 * is alive, `timeoutMs` at most; undefined at once when that process is gone or let the lock go
 * without handing it over. The starter records the job (an fsync) before it hands over, and on a
 * loaded machine that took more than the 5 s this once waited in all.
 */
export async function adoptLock(path: string, timeoutMs: number): Promise<HeldLock | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const owner = readLockOwner(path);
    if (owner && owner.pid === process.pid) return heldLock(path, owner);
    if (!owner || !isAlive(owner) || Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
}
