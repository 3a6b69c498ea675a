import { isAzsError } from '../errors.js';
import { ROOT } from '../catalog/layout.js';
import { listShare, readBackupInfos, removeBackup, removeIfEmpty, type BackupEntry } from '../catalog/share-catalog.js';
import type { Target } from '../targets/target.js';

/**
 * Retention: backups older than the retention period go, except the newest successful one, which
 * always stays; leftovers of interrupted runs go too. The caller holds the job lock, so no backup
 * is being written while leftovers are judged.
 */

export interface PruneRecord {
  DryRun: boolean;
  RetentionPeriodInDays: number;
  BackupsKept: number;
  BackupsRemoved: number;
  LeftoversRemoved: number;
  PathsToDelete: string[];
}

export async function runPrune(target: Target, retentionPeriodInDays: number, dryRun: boolean, now = new Date()): Promise<PruneRecord> {
  const { backups, leftovers } = await listShare(target);
  const cutoff = now.getTime() - retentionPeriodInDays * 86_400_000;
  // Newest first; a BackupInfo.xml that is unreadable or fails its digest does not count as success.
  const infos = await readBackupInfos(target, backups);
  const newestSucceeded: BackupEntry | undefined = backups.find((_, i) => {
    const read = infos[i]!;
    return !isAzsError(read) && read.digestValid && read.info.status === 'Succeeded';
  });
  const expired = backups.filter((b) => b.time.getTime() < cutoff && b !== newestSucceeded);
  const result: PruneRecord = {
    DryRun: dryRun,
    RetentionPeriodInDays: retentionPeriodInDays,
    BackupsKept: backups.length - expired.length,
    BackupsRemoved: expired.length,
    LeftoversRemoved: leftovers.length,
    PathsToDelete: [...expired.map((b) => b.folder), ...leftovers],
  };
  if (dryRun) return result;
  for (const b of expired) await removeBackup(target, b);
  for (const l of leftovers) {
    await target.delete(l);
    const parent = l.slice(0, l.lastIndexOf('/'));
    if (parent !== ROOT) await removeIfEmpty(target, parent);
  }
  return result;
}
