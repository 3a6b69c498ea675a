import type { Target } from '../targets/target.js';
import { FOREIGN_PARTIAL_GRACE_MS } from './prune.js';
import { livePacksNow } from './prune-repository.js';

/**
 * Of the packs on the share (hash → when last written), those an index rebuilt from the packs may
 * name (index-rebuild.ts loadOrRebuildIndex): packs a committed backup names, and packs older than
 * the grace prune gives another machine's backup. A younger pack no index file names may be that
 * of a backup still running elsewhere, which deletes the packs it has not indexed when it fails or
 * is cancelled: a backup that deduplicated against one would commit naming a pack that is gone.
 * Left out, its chunks are stored again by this backup; that machine indexes its own at commit.
 */
export async function settledPacks(target: Target, packs: ReadonlyMap<string, Date>, now = new Date()): Promise<string[]> {
  const { live } = await livePacksNow(target);
  return [...packs]
    .filter(([hash, mtime]) => live?.has(hash) || now.getTime() - mtime.getTime() >= FOREIGN_PARTIAL_GRACE_MS)
    .map(([hash]) => hash);
}
