import { isAzsError } from '../errors.js';
import { ROOT } from '../catalog/layout.js';
import { listShare, readBackupInfo, removeBackup, removeIfEmpty, type BackupEntry } from '../catalog/share-catalog.js';
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

async function isSucceeded(target: Target, entry: BackupEntry): Promise<boolean> {
  try {
    const { info, digestValid } = await readBackupInfo(target, entry);
    return digestValid && info.status === 'Succeeded';
  } catch (e) {
    if (isAzsError(e) && e.alertType) throw e;
    return false;
  }
}

export async function runPrune(target: Target, retentionPeriodInDays: number, dryRun: boolean, now = new Date()): Promise<PruneRecord> {
  const { backups, leftovers } = await listShare(target);
  const cutoff = now.getTime() - retentionPeriodInDays * 86_400_000;
  let newestSucceeded: BackupEntry | undefined;
  for (const b of backups) {
    if (await isSucceeded(target, b)) { newestSucceeded = b; break; }
  }
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
