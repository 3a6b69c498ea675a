import { join } from 'node:path';
import { AzsError, ExitCode } from '../errors.js';
import { tryLock, type HeldLock } from '../config/file-lock.js';
import { homeError, makeHome } from '../config/home-folder.js';

/** One job at a time per AZSBACKUP_HOME: backups, restores, prunes and re-wraps all take this lock. */
export function acquireJobLock(home: string, purpose: string): HeldLock {
  makeHome(home);
  let taken: ReturnType<typeof tryLock>;
  try {
    taken = tryLock(join(home, 'job.lock'), purpose);
  } catch (e) {
    throw homeError(e, home);
  }
  const { lock, holder } = taken;
  if (lock) return lock;
  throw new AzsError(
    `Another job holds the lock: ${holder?.purpose ?? 'unknown job'} (process ${holder?.pid ?? '?'}, since ${holder?.acquiredAt ?? '?'}).`,
    {
      errorId: 'JobLockHeld',
      category: 'ResourceBusy',
      exitCode: ExitCode.Locked,
      targetObject: holder?.purpose,
      recommendedAction: 'Wait for the running job to finish (Get-InfrastructureBackup shows its progress), then try again.',
    },
  );
}
