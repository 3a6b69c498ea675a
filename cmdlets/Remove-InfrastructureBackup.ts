import type { Cmdlet } from '../src/host/cmdlet.js';
import type { RemoveInfrastructureBackupParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { AzsError, ExitCode } from '../src/errors.js';
import { listBackups } from '../src/engine/backup-listing.js';
import { removeBackupEverywhere } from '../src/engine/remove.js';
import { openShare, shareAccess, shareParameters } from '../src/engine/share-access.js';

/**
 * Deletes one backup; with -PassThru returns it, marked Deleted. The last restorable backup on the
 * share (Succeeded, as prune, which always keeps the newest of them, counts it) is refused without
 * -Force, before anything is asked; removing the newest restorable one, or with -Force the last,
 * warns with what is left.
 */
const removeInfrastructureBackup: Cmdlet<RemoveInfrastructureBackupParameters> = async ({
  params,
  secretsFromEnvironment,
  home,
  shouldProcess,
  writeWarning,
}) => {
  const access = shareAccess(new ConfigStore(home), shareParameters(params, secretsFromEnvironment));
  const name = params.Name;
  const target = await openShare(access);
  // Newest first; what removeBackupEverywhere finds missing it reports as BackupNotFound.
  const restorable = (await listBackups(target, access.path, home)).filter((b) => b.IsCloudRecoveryReady);
  const index = restorable.findIndex((b) => b.Name === name.toLowerCase());
  if (index >= 0 && restorable.length === 1 && !params.Force) {
    throw new AzsError(`Backup ${name} is the last restorable backup on ${access.path}; removing it leaves nothing to restore from.`, {
      errorId: 'LastRestorableBackup',
      category: 'InvalidOperation',
      exitCode: ExitCode.Usage,
      targetObject: name,
      recommendedAction:
        'Keep it until a newer backup succeeds (Start-InfrastructureBackup); to remove it all the same, run the command again with -Force.',
    });
  }
  if (!(await shouldProcess(`backup ${name} on ${access.path}`, 'Remove'))) return;
  const removed = await removeBackupEverywhere(target, access.path, home, name);
  if (index === 0) {
    const next = restorable[1];
    writeWarning(
      next
        ? `Removed backup ${removed.Name}, the newest restorable backup; the newest now is ${next.Name} of ${next.CreatedDateTime}.`
        : `Removed backup ${removed.Name}, the last restorable backup: no restorable backup is left on ${access.path}. Run Start-InfrastructureBackup.`,
      removed.Name,
    );
  }
  return params.PassThru ? removed : undefined;
};
export default removeInfrastructureBackup;
