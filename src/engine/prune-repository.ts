import { isAzsError, type AzsError } from '../errors.js';
import type { ParsedBackupInfo } from '../catalog/backup-info.js';
import { listShare, readBackupInfos, type BackupEntry } from '../catalog/share-catalog.js';
import {
  listRepositoryFiles,
  olderThan,
  readIndexFiles,
  survivingEntries,
  type RepositoryFile,
  type RepositoryFiles,
} from '../repository/collect.js';
import { writeIndexFiles } from '../repository/index-file.js';
import { hostKeysFrom, type RepositoryKeys } from '../repository/keys.js';
import { RepositoryLayout } from '../repository/layout.js';
import type { ChunkLocation } from '../repository/pack-reader.js';
import { readRepositoryConfig } from '../repository/repository-config.js';
import type { Target } from '../targets/target.js';
import type { RememberedRepository } from './repository-access.js';

/**
 * Garbage collection of the location's repository, after prune removed the expired backups
 * (docs/REPOSITORY.md 9.4). Live packs are those the BackupInfo.xml of a committed backup
 * names: that file is read without any key, so the backup host prunes in certificate mode too.
 * A pack goes when no committed backup names it and it is older than the grace (a backup running
 * on another machine may be about to name it); first the index is rewritten without it, so no
 * index entry ever points at a pack that is gone (a backup would dedup against it).
 */

export interface CollectionPlan {
  /** Committed packs to delete, by hash, sorted. */
  packs: string[];
  /** Index files superseded by the ones written from `entries`, by hash. */
  indexFiles: string[];
  /** What the new index files hold (only when indexFiles is not empty). */
  entries: ChunkLocation[];
  temporaries: RepositoryFile[];
  files: RepositoryFiles;
  /** The host keys the new index files are sealed with (when indexFiles is not empty). */
  keys?: RepositoryKeys;
  /** Why some of the repository is not collected, for the operator. */
  warning?: string;
}

const layout = new RepositoryLayout();

/** Packs the committed backups name; undefined (and the backups in `unreadable`) when one cannot be trusted to say. */
export function livePacks(
  backups: readonly BackupEntry[],
  infos: readonly (ParsedBackupInfo | AzsError)[],
): { live?: Set<string>; unreadable: string[] } {
  const live = new Set<string>();
  const unreadable: string[] = [];
  backups.forEach((b, i) => {
    const read = infos[i]!;
    if (isAzsError(read) || !read.digestValid) unreadable.push(b.folder);
    else for (const p of read.info.repository?.packs ?? []) live.add(p);
  });
  return unreadable.length ? { unreadable } : { live, unreadable };
}

/** The live packs as the share says now: for a prune that removed backups, and for the check just before packs go. */
export async function livePacksNow(target: Target): Promise<{ live?: Set<string>; unreadable: string[] }> {
  const { backups } = await listShare(target);
  return livePacks(backups, await readBackupInfos(target, backups));
}

/** The host keys, when this machine has them for the repository on the share; otherwise why not. */
async function indexKeys(
  target: Target,
  files: RepositoryFiles,
  remembered?: RememberedRepository,
): Promise<{ keys?: RepositoryKeys; why?: string }> {
  // The listing's config.xml (its size checked before it is fetched): no second round trip on SMB.
  const config = await readRepositoryConfig(target, layout, files.config ?? null).catch(() => undefined);
  if (!remembered || !config || config.id !== remembered.id || !config.publicKey.equals(remembered.publicKey)) {
    return {
      why:
        'this machine has no keys for the repository on the share (it never backed up to it, or only with a certificate it was not given), ' +
        'so it cannot rewrite the index',
    };
  }
  return { keys: hostKeysFrom(remembered) };
}

const kept = (n: number, why: string) =>
  `${n} unreferenced pack${n === 1 ? '' : 's'} past the grace kept: ${why}. Run Invoke-BackupPrune on the machine that makes the backups.`;

/**
 * What to delete from the repository, given the packs committed backups need (`live`), or the
 * backups whose BackupInfo.xml could not be trusted (then nothing in the repository goes).
 */
export async function planCollection(
  target: Target,
  liveness: { live?: Set<string>; unreadable: string[] },
  remembered: RememberedRepository | undefined,
  now: Date,
  graceMs: number,
): Promise<CollectionPlan> {
  const files = await listRepositoryFiles(target, layout);
  const plan: CollectionPlan = { packs: [], indexFiles: [], entries: [], temporaries: [], files };
  const { live } = liveness;
  if (!live) {
    plan.warning =
      `Nothing in the repository was deleted: the BackupInfo.xml of ${liveness.unreadable.join(', ')} cannot be read or fails its digest, ` +
      'so the packs it needs are not known. Check the share, then remove that backup (Remove-InfrastructureBackup) or put the file back.';
    return plan;
  }
  plan.temporaries = files.temporaries.filter((f) => olderThan(f, now, graceMs));
  const dead = [...files.packs].filter(([hash, f]) => !live.has(hash) && olderThan(f, now, graceMs)).map(([hash]) => hash);
  const indexed = await readIndexed(target, files, remembered);
  if (indexed.why) {
    if (dead.length) plan.warning = kept(dead.length, indexed.why);
    return plan;
  }
  const surviving = new Set([...files.packs.keys()].filter((p) => !dead.includes(p)));
  const stale = [...indexed.byFile!.values()].some((locations) => locations.some((l) => !surviving.has(l.pack)));
  if (stale) {
    plan.indexFiles = [...indexed.byFile!.keys()].sort();
    plan.entries = survivingEntries(indexed.byFile!, surviving);
    plan.keys = indexed.keys;
  }
  plan.packs = dead.sort();
  return plan;
}

/** Every index file's entries, or why they cannot be read (then no committed pack may go: one of them may list it). */
async function readIndexed(
  target: Target,
  files: RepositoryFiles,
  remembered?: RememberedRepository,
): Promise<{ byFile?: Map<string, ChunkLocation[]>; why?: string; keys?: RepositoryKeys }> {
  const { keys, why } = await indexKeys(target, files, remembered);
  if (!keys) return { why };
  try {
    return { byFile: await readIndexFiles(target, layout, keys, files.indexFiles), keys };
  } catch (e) {
    if (!isAzsError(e) || e.errorId !== 'IndexDamaged') throw e;
    return { why: `an index file cannot be read (${e.message})` };
  }
}

/** The bytes of a plan's files: what it frees. */
export function planBytes(plan: CollectionPlan): number {
  const { files } = plan;
  return (
    plan.packs.reduce((n, h) => n + files.packs.get(h)!.size, 0) +
    plan.indexFiles.reduce((n, h) => n + files.indexFiles.get(h)!.size, 0) +
    plan.temporaries.reduce((n, f) => n + f.size, 0)
  );
}

/** The paths a plan deletes, in the order it deletes them. */
export function planPaths(plan: CollectionPlan): string[] {
  const { files } = plan;
  return [
    ...plan.indexFiles.map((h) => files.indexFiles.get(h)!.path),
    ...plan.packs.map((h) => files.packs.get(h)!.path),
    ...plan.temporaries.map((f) => f.path),
  ];
}

/**
 * Carries a plan out in the order that leaves the repository consistent at every kill point: the
 * new index files, then the superseded ones (old and new overlap meanwhile: harmless), then the
 * dead packs (none is indexed any more), then the temporaries. Just before packs go, the share's
 * backups are read again: a backup another machine committed meanwhile keeps the packs it names.
 * Returns what was written and what went.
 */
export async function carryOut(
  target: Target,
  plan: CollectionPlan,
  /** Deletes one path; false when the storage keeps it for now (the caller reports it). */
  remove: (path: string) => Promise<boolean>,
): Promise<{ written: string[]; removed: RepositoryFile[]; packsRemoved: number; warning?: string }> {
  const { files } = plan;
  const removed: RepositoryFile[] = [];
  const go = async (file: RepositoryFile) => {
    if (await remove(file.path)) removed.push(file);
  };
  let written: string[] = [];
  if (plan.indexFiles.length) {
    written = (await writeIndexFiles(target, layout, plan.keys!, plan.entries)).map((h) => layout.indexPath(h));
    for (const h of plan.indexFiles) await go(files.indexFiles.get(h)!);
  }
  let packsRemoved = 0;
  let warning: string | undefined;
  if (plan.packs.length) {
    const { live } = await livePacksNow(target);
    if (!live) warning = 'Dead packs were kept: a BackupInfo.xml on the share could not be read just before they were to go.';
    for (const h of live ? plan.packs.filter((p) => !live.has(p)) : []) {
      const before = removed.length;
      await go(files.packs.get(h)!);
      packsRemoved += removed.length - before;
    }
  }
  for (const f of plan.temporaries) await go(f);
  return { written, removed, packsRemoved, ...(warning ? { warning } : {}) };
}
