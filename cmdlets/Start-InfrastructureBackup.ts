import type { Cmdlet } from '../src/host/cmdlet.js';
import type { StartInfrastructureBackupParameters } from './generated/parameters.js';
import { exitCodeOf } from '../src/engine/backup-record.js';
import { startBackupInBackground } from '../src/engine/background-job.js';
import { runBackupJob } from '../src/engine/backup-job.js';

/**
 * Runs one backup of all (or the named) roles and waits, showing progress; with -AsJob it queues
 * the backup in a background process and returns at once.
 */
const startInfrastructureBackup: Cmdlet<StartInfrastructureBackupParameters> = async ({
  params,
  home,
  progress,
  signal,
  shouldProcess,
  writeError,
  writeWarning,
  setExitCode,
}) => {
  const roleNames = params.RoleName;
  if (!(await shouldProcess(roleNames?.join(', ') ?? 'all roles', 'Back up'))) return;
  if (params.AsJob) return startBackupInBackground(home, roleNames);
  const { record, roleErrors, warnings } = await runBackupJob({ home, roleNames, progress, signal, warn: writeWarning });
  for (const warning of warnings) writeWarning(warning);
  // The exit code first, so each role's error record says the code the command ends with.
  setExitCode(exitCodeOf(record));
  for (const error of roleErrors) writeError(error);
  return record;
};
export default startInfrastructureBackup;
