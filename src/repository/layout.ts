import { randomBytes } from 'node:crypto';

/**
 * Where a repository's files lie on a target, below one folder of ours beside MASBackup:
 *
 *   <root>/packs/<first two hex digits>/<SHA-256 of the pack, 64 hex>.pack
 *   <root>/packs/.pending-<16 hex>.pack       a pack being written (renamed once complete)
 *   <root>/index/<SHA-256 of the index file, 64 hex>.idx
 *
 * The two-digit fan-out keeps folders to a few hundred entries on an SMB share.
 */
export const DEFAULT_REPOSITORY_ROOT = 'AzsRepository';
const HASH_NAME = /^[0-9a-f]{64}$/;

export class RepositoryLayout {
  constructor(readonly root: string = DEFAULT_REPOSITORY_ROOT) {}

  get packsFolder(): string {
    return `${this.root}/packs`;
  }

  get indexFolder(): string {
    return `${this.root}/index`;
  }

  packPath(hash: string): string {
    return `${this.packsFolder}/${hash.slice(0, 2)}/${hash}.pack`;
  }

  indexPath(hash: string): string {
    return `${this.indexFolder}/${hash}.idx`;
  }

  pendingPackPath(): string {
    return `${this.packsFolder}/.pending-${randomBytes(8).toString('hex')}.pack`;
  }

  /** The hash a path below packsFolder names, when it is a committed pack's path. */
  packHashOf(pathBelowPacks: string): string | undefined {
    const m = /^([0-9a-f]{2})\/([0-9a-f]{64})\.pack$/.exec(pathBelowPacks);
    return m && m[2]!.startsWith(m[1]!) ? m[2] : undefined;
  }

  /** The hash an index file's name says, when it is one. */
  indexHashOf(name: string): string | undefined {
    const base = name.endsWith('.idx') ? name.slice(0, -4) : '';
    return HASH_NAME.test(base) ? base : undefined;
  }
}
