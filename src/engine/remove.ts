import { backupNotFound, listShare, removeBackup } from '../catalog/share-catalog.js';
import { AzsError, ExitCode } from '../errors.js';
import type { Target } from '../targets/target.js';
import { listBackups } from './backup-listing.js';
import type { BackupRecord } from './backup-record.js';
import { runJob } from './job.js';
import { JobStore } from './job-store.js';

/** What a removal leaves: the backup removed (Status Deleted), and the restorable backups it left, newest first. */
export interface Removed {
  removed: BackupRecord;
  /** Whether it was the newest restorable backup. */
  wasNewest: boolean;
  left: BackupRecord[];
}

/** Refuses to remove the last restorable backup on the share unless `force`. */
export function refuseLastRestorable(restorable: BackupRecord[], name: string, sharePath: string, force: boolean): void {
  const isLast = restorable.length === 1 && restorable[0]!.Name === name.toLowerCase();
  if (!isLast || force) return;
  throw new AzsError(`Backup ${name} is the last restorable backup on ${sharePath}; removing it leaves nothing to restore from.`, {
    errorId: 'LastRestorableBackup',
    category: 'InvalidOperation',
    exitCode: ExitCode.Usage,
    targetObject: name,
    recommendedAction:
      'Keep it until a newer backup succeeds (Start-InfrastructureBackup); to remove it all the same, run the command again with -Force.',
  });
}

/**
 * Removes a backup from the share (if it is there) and from local job history. Whether it is the
 * last restorable one is decided again under the job lock, from the share as it is then: a check
 * made before (the cmdlet's, ahead of its prompt) may be stale, as another removal or a prune
 * may have taken the other restorable backups meanwhile.
 */
export async function removeBackupEverywhere(
  target: Target,
  sharePath: string,
  home: string,
  name: string,
  force = false,
): Promise<Removed> {
  return runJob(home, `remove ${name.toLowerCase()}`, async () => {
    const all = await listBackups(target, sharePath, home);
    const record = all.find((b) => b.Name === name.toLowerCase());
    if (!record) throw backupNotFound(name, target.location);
    const restorable = all.filter((b) => b.IsCloudRecoveryReady);
    refuseLastRestorable(restorable, name, sharePath, force);
    const onShare = (await listShare(target)).backups.find((b) => b.name === record.Name);
    if (onShare) await removeBackup(target, onShare);
    new JobStore(home).remove(record.Name);
    return {
      removed: { ...record, Status: 'Deleted' },
      wasNewest: restorable[0]?.Name === record.Name,
      left: restorable.filter((b) => b.Name !== record.Name),
    };
  });
}
