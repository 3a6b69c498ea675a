import type { Target } from '../targets/target.js';
import { ChunkIndex } from './chunk-index.js';
import type { RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import { readPackContents } from './pack-reader.js';

/** The committed packs on the target, by hash (pending packs and stray files are not listed). */
export async function listPacks(target: Target, layout: RepositoryLayout): Promise<string[]> {
  return [...(await listPackSizes(target, layout)).keys()];
}

/** The committed packs on the target, by hash in order, with the time each was last written, as listed. */
export async function listPackTimes(target: Target, layout: RepositoryLayout): Promise<Map<string, Date>> {
  const times = new Map<string, Date>();
  for (const e of await target.listTree(layout.packsFolder)) {
    const hash = e.isDirectory ? undefined : layout.packHashOf(e.path);
    if (hash !== undefined) times.set(hash, e.mtime);
  }
  return new Map([...times].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The committed packs on the target, by hash in order, with their listed sizes (a reader refuses one too large unread). */
export async function listPackSizes(target: Target, layout: RepositoryLayout): Promise<Map<string, number>> {
  const tree = await target.listTree(layout.packsFolder);
  const sizes = new Map<string, number>();
  for (const e of tree) {
    const hash = e.isDirectory ? undefined : layout.packHashOf(e.path);
    if (hash !== undefined) sizes.set(hash, e.size);
  }
  return new Map([...sizes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * The index rebuilt from the packs alone: each pack is streamed once, checked against its name,
 * and its authenticated table of contents added. Throws PackDamaged on the first damaged pack, so
 * a rebuild never silently drops chunks; the caller decides whether to go on without that pack.
 */
export async function rebuildIndexFromPacks(target: Target, layout: RepositoryLayout, keys: RepositoryKeys): Promise<ChunkIndex> {
  const index = new ChunkIndex();
  for (const pack of await listPacks(target, layout)) {
    const { entries } = await readPackContents(target, layout, pack, keys);
    for (const entry of entries!) index.add({ ...entry, pack });
  }
  return index;
}
