import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AzsError, ExitCode } from '../errors.js';
import { tryLock, type HeldLock } from '../config/file-lock.js';

/** One job at a time per AZSBACKUP_HOME: backups, restores, prunes and re-wraps all take this lock. */
export function acquireJobLock(home: string, purpose: string): HeldLock {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const { lock, holder } = tryLock(join(home, 'job.lock'), purpose);
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
