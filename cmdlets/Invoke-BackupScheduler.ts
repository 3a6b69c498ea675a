import type { Cmdlet } from '../src/host/cmdlet.js';
import type { InvokeBackupSchedulerParameters } from './generated/parameters.js';
import { exitCodeOf } from '../src/engine/backup-record.js';
import { schedulerTick } from '../src/engine/scheduler.js';

/** One scheduler tick: runs a backup and prune if one is due; returns the backup, or nothing. */
const invokeBackupScheduler: Cmdlet<InvokeBackupSchedulerParameters> = async ({
  home,
  progress,
  signal,
  shouldProcess,
  writeError,
  writeWarning,
  setExitCode,
}) => {
  if (!(await shouldProcess('the backup schedule', 'Run a backup if one is due'))) return;
  const outcome = await schedulerTick(home, progress, signal, undefined, writeWarning);
  if (!outcome) return;
  for (const warning of outcome.warnings) writeWarning(warning);
  // The exit code first, so each role's error record says the code the command ends with.
  setExitCode(exitCodeOf(outcome.record));
  for (const error of outcome.roleErrors) writeError(error);
  return outcome.record;
};
export default invokeBackupScheduler;
