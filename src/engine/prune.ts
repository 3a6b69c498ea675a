import { isAzsError, type AzsError } from '../errors.js';
import { authenticatorKey, backupInfoMacKey, type ParsedBackupInfo } from '../catalog/backup-info.js';
import { PARTIAL_SUFFIX, ROOT, isBackupName, stampOf, stampTime } from '../catalog/layout.js';
import { listShare, readBackupInfos, removeBackup, removeIfEmpty, type BackupEntry } from '../catalog/share-catalog.js';
import { ConfigStore } from '../config/store.js';
import type { Target } from '../targets/target.js';
import { isWrappedFor, unwrapWith, type EncryptFor } from '../crypto/recipient.js';
import { configuredRecipients, openShare, type ShareAccess } from './share-access.js';
import { runJob } from './job.js';
import { JobStore } from './job-store.js';
import { carryOut, livePacks, livePacksNow, planBytes, planCollection, planPaths } from './prune-repository.js';
import { rememberedRepository, type RememberedRepository } from './repository-access.js';

/**
 * Retention: backups older than the retention period go, except the newest successful one, which
 * always stays; leftovers of interrupted runs go too. The caller holds the job lock, so no backup
 * of this machine is being written while leftovers are judged: `pruneJob` takes it.
 *
 * Another machine may write to the same share, though (or a CI job with its own AZSBACKUP_HOME may
 * prune it): a `<name>.partial` folder that no job here started may be a backup still running
 * there. It is kept until its stamp, the time that backup started, is FOREIGN_PARTIAL_GRACE_MS
 * old; a backup that runs longer than that is not expected (they start every 4 to 12 hours).
 *
 * Then the location's repository is collected (prune-repository.ts): packs no remaining backup
 * names, older than the same grace, go, after the index has been rewritten without them.
 */

export const FOREIGN_PARTIAL_GRACE_MS = 24 * 3_600_000;

/**
 * A stamp more than this after the clock is said to be in the future (PathsInFuture): another
 * machine's clock may be a little ahead, and its backup of a minute ago is no cause for a warning.
 */
export const FUTURE_STAMP_TOLERANCE_MS = 3_600_000;

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
   * Backups whose stamp lies in the future (made while a clock was ahead, or put there by a writer
   * of the share): kept, since they are never past the window, and never the newest successful
   * backup that retention keeps whatever its age.
   */
  PathsInFuture: string[];
  /**
   * What the storage refused to delete for now (a blob under an immutability policy, legal hold or
   * lease): kept, and removed by a later prune once released.
   */
  PathsRetained: string[];
  /** Packs of the repository deleted (or, with DryRun, to delete): no committed backup names them. */
  PacksRemoved: number;
  /**
   * The repository's files deleted (or to delete), in that order: index files superseded by the
   * one written in their place, dead packs, temporaries of killed writers.
   */
  RepositoryPathsToDelete: string[];
  /** The index files written in place of the superseded ones (none with DryRun). */
  IndexFilesWritten: string[];
  /** Bytes of every file deleted (or to delete): expired backups, leftovers and the repository's files. */
  BytesFreed: number;
  /** Why part of the repository was not collected (an unreadable BackupInfo.xml, no keys to rewrite the index); null when it all was. */
  RepositoryWarning: string | null;
}

export interface PruneOptions {
  retentionPeriodInDays: number;
  dryRun: boolean;
  /** Names (lower case) of the backups this machine's jobs started: their leftovers go at once. */
  ownBackups: ReadonlySet<string>;
  /** The host keys this machine remembered for the location's repository: without them the index cannot be rewritten. */
  repository?: RememberedRepository;
  /** Whether a backup's BackupInfo.xml proves it ours (authorshipCheck); without it, its digest is all that is asked. */
  provenOurs?: AuthorshipCheck;
  now?: Date;
}

/**
 * Whether a BackupInfo.xml proves its backup made by a holder of the material configured here:
 * true, false (it is sealed for that material, and the seal does not hold), or undefined (made for
 * other material, or before its certificate's .pfx was given: nothing here can tell).
 */
export type AuthorshipCheck = (entry: BackupEntry, parsed: ParsedBackupInfo) => boolean | undefined;

/**
 * The check a backup host can make with its configuration: with the symmetric key, the MAC keyed
 * from the data key it unwraps; with a certificate whose .pfx was given once, its authenticator.
 * A digest anyone can recompute; these only a holder of the key or the certificate's secret.
 */
export function authorshipCheck(recipients: readonly EncryptFor[]): AuthorshipCheck {
  return (entry, parsed) => {
    let proven: boolean | undefined;
    for (const r of recipients) {
      try {
        if (r.kind === 'Key') {
          if (!isWrappedFor(r, parsed.info.recipients)) continue;
          const dataKey = unwrapWith(r, parsed.info.recipients, entry.name);
          parsed.authenticate(backupInfoMacKey(dataKey, entry.name, entry.stamp, parsed.formatVersion));
        } else {
          if (!r.authenticationKey || !parsed.authenticatorIds.includes(r.thumbprint.toUpperCase())) continue;
          parsed.authenticateCertificate(r.thumbprint, authenticatorKey(r.authenticationKey, entry.name, entry.stamp));
        }
        proven = true;
      } catch {
        return false;
      }
    }
    return proven;
  };
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

export async function runPrune(given: Target, opts: PruneOptions): Promise<PruneRecord> {
  const target = killSwitchForTests(given);
  const now = opts.now ?? new Date();
  const listing = await listShare(target);
  const { backups } = listing;
  const inProgress = listing.leftovers.filter((l) => mayBeRunningElsewhere(l, opts, now, target.renameCopies === true));
  const cutoff = now.getTime() - opts.retentionPeriodInDays * 86_400_000;
  const infos = await readBackupInfos(target, backups);
  const newestSucceeded = newestRestorable(backups, infos, now, opts.provenOurs);
  const expired = backups.filter((b) => b.time.getTime() < cutoff && b !== newestSucceeded);
  // A leftover inside an expired backup (an interrupted rewrite's temporary) goes with its folder.
  const inExpired = (l: string) => expired.some((b) => l.startsWith(`${b.folder}/`));
  const leftovers = listing.leftovers.filter((l) => !inProgress.includes(l) && !inExpired(l));
  const result: PruneRecord = {
    DryRun: opts.dryRun,
    RetentionPeriodInDays: opts.retentionPeriodInDays,
    BackupsKept: backups.length - expired.length,
    BackupsRemoved: expired.length,
    LeftoversRemoved: leftovers.length,
    PathsToDelete: [...expired.map((b) => b.folder), ...leftovers],
    PathsInProgress: inProgress,
    PathsInFuture: backups.filter((b) => b.time.getTime() > now.getTime() + FUTURE_STAMP_TOLERANCE_MS).map((b) => b.folder),
    PathsRetained: [],
    PacksRemoved: 0,
    RepositoryPathsToDelete: [],
    IndexFilesWritten: [],
    BytesFreed: 0,
    RepositoryWarning: null,
  };
  const sizes = await folderSizes(target, result.PathsToDelete);
  const keptLive = () => livePacks(...unzip(backups, infos, (b) => !expired.includes(b)));
  if (opts.dryRun) {
    const plan = await planCollection(target, keptLive(), opts.repository, now, FOREIGN_PARTIAL_GRACE_MS);
    result.PacksRemoved = plan.packs.length;
    result.RepositoryPathsToDelete = planPaths(plan);
    result.BytesFreed = [...sizes.values()].reduce((n, b) => n + b, 0) + planBytes(plan);
    result.RepositoryWarning = plan.warning ?? null;
    return result;
  }
  const removed = retainedReporter(result);
  await removeExpiredAndLeftovers(target, result, { expired, leftovers, sizes, removed });
  // What remains on the share now (a removal the storage refused leaves its backup, and its packs, live).
  const live = expired.length ? await livePacksNow(target) : keptLive();
  const plan = await planCollection(target, live, opts.repository, now, FOREIGN_PARTIAL_GRACE_MS);
  const done = await carryOut(target, plan, (p) => removed(() => target.delete(p)));
  result.PacksRemoved = done.packsRemoved;
  result.RepositoryPathsToDelete = planPaths(plan);
  result.IndexFilesWritten = done.written;
  result.BytesFreed += done.removed.reduce((n, f) => n + f.size, 0);
  result.RepositoryWarning = done.warning ?? plan.warning ?? null;
  return result;
}

/**
 * The backup retention keeps whatever its age: the newest (backups come newest first) that
 * succeeded by a BackupInfo.xml that is readable, passes its digest and was made at its stamp
 * folder's time (a folder moved under another stamp fails its seal on restore), and whose stamp is
 * not after `now`: a backup dated in the future is never past the window anyway, and counting it
 * as the newest would let every real backup past the window go.
 */
function newestRestorable(
  backups: readonly BackupEntry[],
  infos: readonly (ParsedBackupInfo | AzsError)[],
  now: Date,
  provenOurs?: AuthorshipCheck,
): BackupEntry | undefined {
  return backups.find((b, i) => {
    const read = infos[i]!;
    if (isAzsError(read) || !read.digestValid || read.info.status !== 'Succeeded') return false;
    if (b.time.getTime() > now.getTime() || stampOf(read.info.createdDateTime) !== b.stamp) return false;
    // A copy a writer of the share made under a new name and a recent date passes all the above
    // (the digest is keyless), and no restore takes it: kept as the newest, it would let the real
    // backups past the window go.
    return provenOurs?.(b, read) !== false;
  });
}

/** What the operator is told of a backup in PathsInFuture. */
export function futureDatedWarning(folder: string): string {
  const [, stamp, name] = folder.split('/');
  return (
    `Backup ${name} (${folder}) is dated ${stampTime(stamp!).toISOString()}, in the future: it is kept until it is past the retention ` +
    'period counted from that date, and is not counted as the newest successful backup, which prune always keeps. Check the clock of ' +
    'the machine that made it; if no machine of yours made it, check the share for tampering, and remove it with Remove-InfrastructureBackup.'
  );
}

/** The backups (and their BackupInfo.xml reads) that `keep` keeps. */
function unzip<T, U>(entries: readonly T[], reads: readonly U[], keep: (e: T) => boolean): [T[], U[]] {
  const at = entries.map((_, i) => i).filter((i) => keep(entries[i]!));
  return [at.map((i) => entries[i]!), at.map((i) => reads[i]!)];
}

/** Runs one removal; what the storage keeps for now is reported in PathsRetained, not a failure. */
function retainedReporter(result: PruneRecord): (remove: () => Promise<void>) => Promise<boolean> {
  return async (remove) => {
    try {
      await remove();
      return true;
    } catch (e) {
      if (!isAzsError(e) || e.errorId !== 'ShareObjectRetained') throw e;
      result.PathsRetained.push(...(e.targetObject as string[]));
      return false;
    }
  };
}

/**
 * An expired backup that is no longer there to be renamed aside was removed meanwhile by a prune on
 * another machine sharing the share (its job lock does not hold that one off): what this prune set
 * out to do is done, though not by it, so it goes on rather than failing as if a name were wrong.
 */
function goneMeanwhile(e: unknown): false {
  if (isAzsError(e) && e.errorId === 'TargetObjectNotFound') return false;
  throw e;
}

async function removeExpiredAndLeftovers(
  target: Target,
  result: PruneRecord,
  todo: {
    expired: BackupEntry[];
    leftovers: string[];
    sizes: Map<string, number>;
    removed: (remove: () => Promise<void>) => Promise<boolean>;
  },
): Promise<void> {
  const { expired, leftovers, sizes, removed } = todo;
  for (const b of expired) {
    if (await removed(() => removeBackup(target, b)).catch((e: unknown) => goneMeanwhile(e))) result.BytesFreed += sizes.get(b.folder) ?? 0;
    else result.BackupsRemoved--;
  }
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
    result.BytesFreed += sizes.get(l) ?? 0;
    await removeIfEmpty(target, parent);
  }
}

/** The bytes below each of `folders` (paths from the share's root, under MASBackup), from one listing. */
async function folderSizes(target: Target, folders: readonly string[]): Promise<Map<string, number>> {
  const sizes = new Map(folders.map((f) => [f, 0]));
  if (folders.length === 0) return sizes;
  for (const e of await target.listTree(ROOT)) {
    if (e.isDirectory) continue;
    const path = `${ROOT}/${e.path}`;
    for (const f of folders) if (path === f || path.startsWith(`${f}/`)) sizes.set(f, sizes.get(f)! + e.size);
  }
  return sizes;
}

/**
 * TEST ONLY: AZSBACKUP_TEST_PRUNE_KILL_AFTER=N (or the `variable` given: Update-BackupEncryption's is
 * AZSBACKUP_TEST_REWRAP_KILL_AFTER) makes the job kill its own process (SIGKILL, as kill -9) once N
 * writes, renames or deletes on the share have completed, so a test can stop it after each step
 * (test/engine/prune-repository.test.ts, rewrap-crash.test.ts). Never set it in production.
 */
export function killSwitchForTests(target: Target, variable = 'AZSBACKUP_TEST_PRUNE_KILL_AFTER'): Target {
  const after = Number(process.env[variable] ?? 0);
  if (!(after > 0)) return target;
  let done = 0;
  const steps = new Set<PropertyKey>(['write', 'rename', 'delete', 'mkdir']);
  return new Proxy(target, {
    get(t, prop) {
      const value = Reflect.get(t, prop, t);
      if (typeof value !== 'function') return value;
      if (!steps.has(prop)) return value.bind(t);
      return async (...args: unknown[]) => {
        const r = await value.apply(t, args);
        if (++done >= after) process.kill(process.pid, 'SIGKILL');
        return r;
      };
    },
  });
}

/**
 * Retention as a job (Invoke-BackupPrune, and the scheduler after its backup): under the job lock,
 * knowing which leftovers this machine's own jobs started.
 */
export async function pruneJob(
  home: string,
  access: ShareAccess,
  opts: Omit<PruneOptions, 'ownBackups' | 'repository'>,
): Promise<PruneRecord> {
  return runJob(home, 'prune', async () => {
    const repository = hostKeysFor(home, access.path);
    const provenOurs = authorshipCheckFor(home);
    return runPrune(await openShare(access), {
      ...opts,
      ownBackups: new JobStore(home).names(),
      ...(repository ? { repository } : {}),
      ...(provenOurs ? { provenOurs } : {}),
    });
  });
}

/** The authorship check this machine's configured material allows; none when it has none (a prune with -Path on a fresh machine). */
function authorshipCheckFor(home: string): AuthorshipCheck | undefined {
  const store = new ConfigStore(home);
  try {
    return authorshipCheck(configuredRecipients(store));
  } catch {
    return undefined;
  }
}

/** The repository keys this machine remembered for the share; none when it has none or they no longer open (then the index is left as it is). */
function hostKeysFor(home: string, location: string): RememberedRepository | undefined {
  const store = new ConfigStore(home);
  try {
    return rememberedRepository(store, store.read(), location);
  } catch {
    return undefined;
  }
}
