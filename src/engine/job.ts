import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AzsError, ExitCode } from '../errors.js';
import { adoptLock, outOfSight, tryLock, type HeldLock } from '../config/file-lock.js';
import { homeError, makeHome } from '../config/home-folder.js';

/**
 * The job runner: one job at a time per AZSBACKUP_HOME. Backups, restores, prunes, removals and
 * re-wraps each run through `runJob` (or, queued with -AsJob, `queueJob`), which is the one place
 * the job lock is taken and let go; cmdlets call the job's engine entry and never see the lock.
 */

/** Runs `work` holding the job lock, released however it ends; a lock handed over by `queueJob`'s caller is used instead of a new one. */
export async function runJob<T>(home: string, purpose: string, work: () => Promise<T>, handed?: HeldLock): Promise<T> {
  const lock = handed ?? acquireJobLock(home, purpose);
  try {
    return await work();
  } finally {
    lock.release();
  }
}

/**
 * Takes the lock here, so a busy service fails at once (exit 11), and lets `start` hand it to the
 * process it starts; if `start` throws, the lock is let go.
 */
export function queueJob<T>(home: string, purpose: string, start: (handOver: (pid: number) => void) => T): T {
  const lock = acquireJobLock(home, purpose);
  try {
    return start((pid) => lock.transferTo(pid));
  } catch (e) {
    lock.release();
    throw e;
  }
}

/** In the process `queueJob` started: waits up to `timeoutMs` for the lock to be handed over, for `runJob` to use and let go. */
export async function adoptJobLock(home: string, timeoutMs: number): Promise<HeldLock | undefined> {
  return adoptLock(lockFile(home), timeoutMs);
}

const lockFile = (home: string): string => join(home, 'job.lock');

/** The lock itself, for `runJob` and `queueJob` (and a test that plays a queued job's runner). */
export function acquireJobLock(home: string, purpose: string): HeldLock {
  makeHome(home);
  let taken: ReturnType<typeof tryLock>;
  try {
    taken = tryLock(lockFile(home), purpose);
  } catch (e) {
    throw homeError(e, home);
  }
  const { lock, holder } = taken;
  if (lock) return lock;
  // A holder that cannot be checked from here is trusted for a day: say where it is, and what to do if it is gone.
  const where =
    holder && outOfSight(holder) ? ` on host ${holder.hostname}${holder.pidNamespace ? `, PID namespace ${holder.pidNamespace}` : ''}` : '';
  throw new AzsError(
    `Another job holds the lock: ${holder?.purpose ?? 'unknown job'} (process ${holder?.pid ?? '?'}${where}, since ${holder?.acquiredAt ?? '?'}).`,
    {
      errorId: 'JobLockHeld',
      category: 'ResourceBusy',
      exitCode: ExitCode.Locked,
      targetObject: holder?.purpose,
      recommendedAction: `Wait for the running job to finish (Get-InfrastructureBackup shows its progress), then try again.${
        where
          ? ` Its process cannot be checked from here (another host or container): if no AzsBackup command runs there any more, remove ${lockFile(home)}.`
          : ''
      }`,
    },
  );
}

/**
 * TEST ONLY: AZSBACKUP_TEST_PAUSE_AFTER_CONFIG_READ=<file> holds a backup, or an
 * Update-BackupEncryption, right after it first read its configuration and before it takes the job
 * lock: it makes `<file>.paused`, then waits until `<file>` exists. A test runs a Set-BackupShare
 * or Clear-BackupConfiguration in exactly that gap (test/engine/config-read-before-lock.test.ts).
 * Never set it in production: the job waits for a file nobody makes.
 */
export async function pauseAfterConfigReadForTests(): Promise<void> {
  const file = process.env.AZSBACKUP_TEST_PAUSE_AFTER_CONFIG_READ;
  if (!file) return;
  writeFileSync(`${file}.paused`, '');
  while (!existsSync(file)) await new Promise((resolve) => setTimeout(resolve, 20));
}
