import { isAzsError } from '../errors.js';
import { PARTIAL_SUFFIX, ROOT, isBackupName, stampTime } from '../catalog/layout.js';
import { listShare, readBackupInfos, removeBackup, removeIfEmpty, type BackupEntry } from '../catalog/share-catalog.js';
import type { Target } from '../targets/target.js';
import { openShare, type ShareAccess } from './share-access.js';
import { runJob } from './job.js';
import { JobStore } from './job-store.js';

/**
 * Retention: backups older than the retention period go, except the newest successful one, which
 * always stays; leftovers of interrupted runs go too. The caller holds the job lock, so no backup
 * of this machine is being written while leftovers are judged: `pruneJob` takes it.
 *
 * Another machine may write to the same share, though (or a CI job with its own AZSBACKUP_HOME may
 * prune it): a `<name>.partial` folder that no job here started may be a backup still running
 * there. It is kept until its stamp, the time that backup started, is FOREIGN_PARTIAL_GRACE_MS
 * old; a backup that runs longer than that is not expected (they start every 4 to 12 hours).
 */

export const FOREIGN_PARTIAL_GRACE_MS = 24 * 3_600_000;

export interface PruneRecord {
  DryRun: boolean;
  RetentionPeriodInDays: number;
  BackupsKept: number;
  BackupsRemoved: number;
  LeftoversRemoved: number;
  PathsToDelete: string[];
  /** `.partial` folders kept because they may be backups running elsewhere. */
  PathsInProgress: string[];
  /**
   * What the storage refused to delete for now (a blob under an immutability policy, legal hold or
   * lease): kept, and removed by a later prune once released.
   */
  PathsRetained: string[];
}

export interface PruneOptions {
  retentionPeriodInDays: number;
  dryRun: boolean;
  /** Names (lower case) of the backups this machine's jobs started: their leftovers go at once. */
  ownBackups: ReadonlySet<string>;
  now?: Date;
}

/**
 * A `MASBackup/<stamp>/<name>.partial` leftover (where backups are written in place, as in a blob
 * container: a `<name>` folder without BackupInfo.xml) no job here started, young enough to be a
 * backup still running elsewhere.
 */
function mayBeRunningElsewhere(folder: string, opts: PruneOptions, now: Date, inPlace: boolean): boolean {
  const [, stamp, child] = folder.split('/');
  if (stamp === undefined || child === undefined || !(child.endsWith(PARTIAL_SUFFIX) || inPlace)) return false;
  const name = (child.endsWith(PARTIAL_SUFFIX) ? child.slice(0, -PARTIAL_SUFFIX.length) : child).toLowerCase();
  if (!isBackupName(name) || opts.ownBackups.has(name)) return false;
  return now.getTime() - stampTime(stamp).getTime() < FOREIGN_PARTIAL_GRACE_MS;
}

export async function runPrune(target: Target, opts: PruneOptions): Promise<PruneRecord> {
  const now = opts.now ?? new Date();
  const listing = await listShare(target);
  const { backups } = listing;
  const inProgress = listing.leftovers.filter((l) => mayBeRunningElsewhere(l, opts, now, target.renameCopies === true));
  const leftovers = listing.leftovers.filter((l) => !inProgress.includes(l));
  const cutoff = now.getTime() - opts.retentionPeriodInDays * 86_400_000;
  // Newest first; a BackupInfo.xml that is unreadable or fails its digest does not count as success.
  const infos = await readBackupInfos(target, backups);
  const newestSucceeded: BackupEntry | undefined = backups.find((_, i) => {
    const read = infos[i]!;
    return !isAzsError(read) && read.digestValid && read.info.status === 'Succeeded';
  });
  const expired = backups.filter((b) => b.time.getTime() < cutoff && b !== newestSucceeded);
  const result: PruneRecord = {
    DryRun: opts.dryRun,
    RetentionPeriodInDays: opts.retentionPeriodInDays,
    BackupsKept: backups.length - expired.length,
    BackupsRemoved: expired.length,
    LeftoversRemoved: leftovers.length,
    PathsToDelete: [...expired.map((b) => b.folder), ...leftovers],
    PathsInProgress: inProgress,
    PathsRetained: [],
  };
  if (opts.dryRun) return result;
  /** Runs one removal; what the storage keeps for now is reported, not a failure. */
  const removed = async (remove: () => Promise<void>): Promise<boolean> => {
    try {
      await remove();
      return true;
    } catch (e) {
      if (!isAzsError(e) || e.errorId !== 'ShareObjectRetained') throw e;
      result.PathsRetained.push(...(e.targetObject as string[]));
      return false;
    }
  };
  for (const b of expired) if (!(await removed(() => removeBackup(target, b)))) result.BackupsRemoved--;
  for (const l of leftovers) {
    const parent = l.slice(0, l.lastIndexOf('/'));
    // An empty stamp folder goes only if it still is: another machine may have just begun a backup
    // in it (a stamp is a second of time, and any machine's backup that second makes it).
    if (parent === ROOT) {
      await removeIfEmpty(target, l);
      continue;
    }
    if (!(await removed(() => target.delete(l)))) {
      result.LeftoversRemoved--;
      continue;
    }
    await removeIfEmpty(target, parent);
  }
  return result;
}

/**
 * Retention as a job (Invoke-BackupPrune, and the scheduler after its backup): under the job lock,
 * knowing which leftovers this machine's own jobs started.
 */
export async function pruneJob(home: string, access: ShareAccess, opts: Omit<PruneOptions, 'ownBackups'>): Promise<PruneRecord> {
  return runJob(home, 'prune', async () => runPrune(await openShare(access), { ...opts, ownBackups: new JobStore(home).names() }));
}
