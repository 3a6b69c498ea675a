import { listShare, removeBackup } from '../catalog/share-catalog.js';
import type { Target } from '../targets/target.js';
import { getBackup } from './backup-listing.js';
import type { BackupRecord } from './backup-record.js';
import { runJob } from './job.js';
import { JobStore } from './job-store.js';

/** Removes a backup from the share (if it is there) and from local job history. */
export async function removeBackupEverywhere(target: Target, sharePath: string, home: string, name: string): Promise<BackupRecord> {
  const record = await getBackup(target, sharePath, home, name);
  await runJob(home, `remove ${record.Name}`, async () => {
    const onShare = (await listShare(target)).backups.find((b) => b.name === record.Name);
    if (onShare) await removeBackup(target, onShare);
    new JobStore(home).remove(record.Name);
  });
  return { ...record, Status: 'Deleted' };
}
