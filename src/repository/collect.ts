import { createHash } from 'node:crypto';
import type { Target, TargetEntry } from '../targets/target.js';
import { decodeIndexFile, readListedIndexFiles } from './index-file.js';
import type { RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';
import type { ChunkLocation } from './pack-reader.js';
import { indexDamaged } from './errors.js';
import { REPOSITORY_CONFIG_FILE } from './repository-config.js';

/**
 * What garbage collection of a repository needs to know of its files, and the decisions it makes
 * on them (the engine's prune runs them, in the order that survives a kill: docs/REPOSITORY.md 9.4).
 */

/** One file of the repository, with the path (from the target's root) it is deleted by. */
export interface RepositoryFile {
  path: string;
  size: number;
  mtime: Date;
}

export interface RepositoryFiles {
  /** Committed packs by hash. */
  packs: Map<string, RepositoryFile>;
  /** Index files by hash (what their name says). */
  indexFiles: Map<string, RepositoryFile>;
  /**
   * Files of writers that may have been killed: pending packs (`packs/.pending-*.pack`), config
   * temporaries (`.config-*.xml`) and any target's temporary names (`.azs-partial-*`).
   */
  temporaries: RepositoryFile[];
  /** `config.xml` as listed (its size is checked before it is read); undefined when there is none. */
  config?: TargetEntry;
}

const TEMPORARY = /^(\.pending-[0-9a-f]+\.pack|\.config-[0-9a-f]+\.xml|\.azs-partial-.*)$/;

/** Every file of the repository, in one listing (one request on SMB). Names of no kind of ours are left alone. */
export async function listRepositoryFiles(target: Target, layout: RepositoryLayout): Promise<RepositoryFiles> {
  const files: RepositoryFiles = { packs: new Map(), indexFiles: new Map(), temporaries: [] };
  for (const e of await target.listTree(layout.root)) {
    if (e.isDirectory) continue;
    const file = { path: `${layout.root}/${e.path}`, size: e.size, mtime: e.mtime };
    const [top, ...rest] = e.path.split('/');
    const below = rest.join('/');
    const pack = top === 'packs' ? layout.packHashOf(below) : undefined;
    const index = top === 'index' && rest.length === 1 ? layout.indexHashOf(below) : undefined;
    if (e.path === REPOSITORY_CONFIG_FILE) files.config = e;
    else if (pack) files.packs.set(pack, file);
    else if (index) files.indexFiles.set(index, file);
    else if (TEMPORARY.test(e.name)) files.temporaries.push(file);
  }
  return files;
}

/** The entries of each index file (by hash); throws IndexDamaged for one that does not read, hash or authenticate. */
export async function readIndexFiles(
  target: Target,
  layout: RepositoryLayout,
  keys: RepositoryKeys,
  indexFiles: ReadonlyMap<string, RepositoryFile>,
): Promise<Map<string, ChunkLocation[]>> {
  const hashes = [...indexFiles.keys()];
  // By their listed sizes: one over the limit is refused unfetched (readListedIndexFiles).
  const read = await readListedIndexFiles(
    target,
    layout,
    hashes.map((h) => ({ name: `${h}.idx`, isDirectory: false, size: indexFiles.get(h)!.size, mtime: indexFiles.get(h)!.mtime })),
  );
  const out = new Map<string, ChunkLocation[]>();
  hashes.forEach((hash, i) => {
    const file = read[i];
    const name = `${hash}.idx`;
    if (file === undefined) return; // gone since listed: another prune's; it is not ours to supersede
    if (!Buffer.isBuffer(file)) throw indexDamaged(name, file.message, file);
    if (createHash('sha256').update(file).digest('hex') !== hash) throw indexDamaged(name, 'its bytes do not hash to its name');
    out.set(hash, decodeIndexFile(keys, name, file));
  });
  return out;
}

/** Files older than `graceMs` at `now`: a writer elsewhere can no longer be about to use them. */
export function olderThan(file: RepositoryFile, now: Date, graceMs: number): boolean {
  return now.getTime() - file.mtime.getTime() >= graceMs;
}

/** The entries of `surviving` packs, each (chunk, pack) once: what the index files written in place of the old ones hold. */
export function survivingEntries(indexFiles: ReadonlyMap<string, ChunkLocation[]>, surviving: ReadonlySet<string>): ChunkLocation[] {
  const seen = new Set<string>();
  const out: ChunkLocation[] = [];
  for (const locations of indexFiles.values()) {
    for (const l of locations) {
      const key = `${l.pack}:${l.chunkId.toString('hex')}`;
      if (!surviving.has(l.pack) || seen.has(key)) continue;
      seen.add(key);
      out.push(l);
    }
  }
  return out;
}
