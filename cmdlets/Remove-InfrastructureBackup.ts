import type { Cmdlet } from '../src/host/cmdlet.js';
import type { RemoveInfrastructureBackupParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { listBackups } from '../src/engine/backup-listing.js';
import { refuseLastRestorable, removeBackupEverywhere } from '../src/engine/remove.js';
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
  // Newest first; what removeBackupEverywhere finds missing it reports as BackupNotFound. Refused
  // before anything is asked, and decided again under the job lock, as the answer may change while
  // the operator reads the prompt (another removal, a prune).
  const restorable = (await listBackups(target, access.path, home)).filter((b) => b.IsCloudRecoveryReady);
  refuseLastRestorable(restorable, name, access.path, params.Force === true);
  if (!(await shouldProcess(`backup ${name} on ${access.path}`, 'Remove'))) return;
  const { removed, wasNewest, left } = await removeBackupEverywhere(target, access.path, home, name, params.Force === true);
  if (wasNewest) {
    const next = left[0];
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
