import { accessSync, chmodSync, constants, mkdirSync, statSync } from 'node:fs';
import { AzsError, ExitCode } from '../errors.js';
import { fileError } from '../io/bounded-read.js';

/**
 * AZSBACKUP_HOME, the folder of configuration and state. Made owner-only on first write; a home
 * that is a file, or that this account may not write, is the operator's to fix, and is said so
 * (never an internal error).
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
  try {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    chmodSync(home, 0o700);
    accessSync(home, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw homeError(e, home);
  }
}
