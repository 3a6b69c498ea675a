import { isAzsError } from '../errors.js';
import type { Target } from '../targets/target.js';
import { ChunkIndex } from './chunk-index.js';
import { loadIndex, writeIndexFiles } from './index-file.js';
import type { RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import { readPackContents, type ChunkLocation } from './pack-reader.js';
import { listPacks, listPackTimes } from './rebuild.js';

/**
 * The index is a cache of the packs' tables of contents: when it is lost it is written again from
 * the packs alone, with the keys the backup host keeps (the table-of-contents key; no chunk is
 * opened). Restores never need it (catalogs carry each chunk's pack and offset); backups need it
 * to store only what changed.
 */

export interface Reindexed {
  index: ChunkIndex;
  /** The index file written (its hash), when some pack was sound. */
  indexFiles: string[];
  /** Packs left out because they do not hash to their names or their table of contents does not authenticate. */
  damaged: { pack: string; error: Error }[];
}

/**
 * Every committed pack (or those given) streamed once, checked against its name, its table of
 * contents authenticated, and one index file written for all the sound ones. A damaged pack is
 * left out rather than failing the whole: its chunks are then not in the index, so the next
 * backup stores them again instead of relying on it. A pack removed meanwhile (a prune) is skipped.
 */
export async function reindexFromPacks(
  target: Target,
  layout: RepositoryLayout,
  keys: RepositoryKeys,
  packs?: readonly string[],
): Promise<Reindexed> {
  const index = new ChunkIndex();
  const locations: ChunkLocation[] = [];
  const damaged: Reindexed['damaged'] = [];
  for (const pack of packs ?? (await listPacks(target, layout))) {
    try {
      const { entries } = await readPackContents(target, layout, pack, keys);
      for (const entry of entries!) locations.push({ ...entry, pack });
    } catch (e) {
      if (!isAzsError(e) || e.alertType) throw e;
      if (e.errorId === 'TargetObjectNotFound') continue;
      damaged.push({ pack, error: e });
    }
  }
  for (const loc of locations) index.add(loc);
  return { index, indexFiles: await writeIndexFiles(target, layout, keys, locations), damaged };
}

/**
 * The repository's index as a backup starts: the union of its index files, less the entries in
 * packs that are not on the share (passed to `missing`: their chunks are stored anew, so a pack
 * lost to damage or deleted by hand fails no backup, and heals with the next one); or, when the
 * index folder holds none while packs exist (it was lost or deleted, or another machine's first
 * backup is still running), the index rebuilt from the packs `settled` lets it take and written
 * back, so this backup and the next store only what changed. A pack under its final name that no
 * index file names yet may be another machine's backup in progress, which deletes the packs it
 * has not indexed when it fails or is cancelled: `settled` keeps only those that cannot go so
 * (all of them when not given).
 */
export async function loadOrRebuildIndex(
  target: Target,
  layout: RepositoryLayout,
  keys: RepositoryKeys,
  missing?: (packs: string[]) => void,
  settled?: (packs: ReadonlyMap<string, Date>) => Promise<string[]>,
): Promise<ChunkIndex> {
  // The packs are listed after the index files: a writer puts its packs in place before the index
  // file naming them, so every pack an index file listed here names is in the listing unless it
  // is really gone (listed side by side, a backup on another machine made packs look missing).
  const indexFiles = (await target.list(layout.indexFolder)).filter((e) => !e.isDirectory && layout.indexHashOf(e.name));
  const packs = await listPackTimes(target, layout);
  if (indexFiles.length > 0) return loadIndex(target, layout, keys, new Set(packs.keys()), missing);
  if (packs.size === 0) return new ChunkIndex();
  const taken = settled ? await settled(packs) : [...packs.keys()];
  if (taken.length === 0) return new ChunkIndex();
  return (await reindexFromPacks(target, layout, keys, taken)).index;
}
