import { isAzsError } from '../errors.js';
import type { RepositoryKeys } from '../repository/keys.js';
import type { RepositoryLayout } from '../repository/layout.js';
import type { PackEntry } from '../repository/pack-format.js';
import { scanPack } from '../repository/pack-reader.js';
import type { Target } from '../targets/target.js';

/**
 * One pack checked in one pass over its bytes, as Test-InfrastructureBackup and Test-BackupRepository
 * read it: always that its bytes hash to its name (no key needed); with keys, that its table of
 * contents authenticates; with every key and `wanted` entries, that each of those chunks opens and
 * hashes to its id (the plaintext is dropped as soon as it authenticated).
 */
export interface PackCheck {
  pack: string;
  /** Its size, once it was read to the end and hashed right. */
  size?: number;
  /** Its table of contents, when keys were given and it authenticated. */
  entries?: PackEntry[];
  /** The pack is not on the share. */
  missing: boolean;
  /** Why it is not sound (missing, changed, cut short, a chunk not authentic); undefined when it is. */
  error?: Error;
}

/** Chunks to open on the way, deduplicated by offset (scanPack reads each blob once). */
export function distinctByOffset(entries: Iterable<PackEntry>): PackEntry[] {
  const byOffset = new Map<number, PackEntry>();
  for (const e of entries) if (!byOffset.has(e.offset)) byOffset.set(e.offset, e);
  return [...byOffset.values()];
}

export async function checkPack(
  target: Target,
  layout: RepositoryLayout,
  pack: string,
  keys?: RepositoryKeys,
  wanted?: readonly PackEntry[],
  onChunk?: (entry: PackEntry) => void,
  listedSize?: number,
): Promise<PackCheck> {
  try {
    const scan = scanPack(target, layout, pack, { keys, wanted: keys?.privateKey ? wanted : undefined, listedSize });
    for (;;) {
      const step = await scan.next();
      if (step.done) return { pack, size: step.value.size, entries: step.value.entries, missing: false };
      onChunk?.(step.value.entry);
    }
  } catch (e) {
    // The share failing (unreachable, refused) is not this pack's damage: the caller stops.
    if (isAzsError(e) && e.alertType) throw e;
    const missing = isAzsError(e) && e.errorId === 'TargetObjectNotFound';
    return { pack, missing, error: missing ? new Error(`the pack ${pack} is missing from the share`) : (e as Error) };
  }
}
