import { loadAddon, nativeDisabled } from './addon.js';

/**
 * renameat2(2) from rename-exchange.c: RENAME_EXCHANGE (two names swap their files in one step)
 * and RENAME_NOREPLACE (a rename that refuses an existing name in one step). Unavailable when the
 * addon was not compiled, under AZSBACKUP_NATIVE=off, off Linux, or on a file system or kernel
 * that does not support the flag; the caller then uses its fallback.
 */

interface RenameAddon {
  exchange(a: string, b: string): void;
  noReplace(a: string, b: string): void;
}

let addon: RenameAddon | null | undefined;

/** Codes meaning "this kernel or file system cannot do it", not "these paths are wrong". */
const UNSUPPORTED = new Set(['EINVAL', 'ENOSYS', 'ENOTSUP', 'EOPNOTSUPP']);

function renameAddon(): RenameAddon | null {
  if (nativeDisabled()) return null;
  if (addon === undefined) addon = process.platform === 'linux' ? (loadAddon<RenameAddon>('rename_exchange') ?? null) : null;
  return addon;
}

/** Runs one of the addon's renames: false where it is not available here (nothing changed). */
function tryRename(run: (addon: RenameAddon) => void, a: string, b: string): boolean {
  const native = renameAddon();
  if (!native) return false;
  try {
    run(native);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (UNSUPPORTED.has(code)) return false;
    throw Object.assign(new Error(`${(e as Error).message}: '${a}' and '${b}'`), { code });
  }
}

/** True once `a` and `b` have swapped; false when exchanging is not available here (nothing changed). */
export function exchangeNames(a: string, b: string): boolean {
  return tryRename((native) => native.exchange(a, b), a, b);
}

/**
 * Renames `from` to `to` unless `to` exists: 'renamed', 'exists' (nothing changed), or
 * 'unsupported' where RENAME_NOREPLACE is not available here (nothing changed either).
 */
export function renameUnlessExists(from: string, to: string): 'renamed' | 'exists' | 'unsupported' {
  try {
    return tryRename((native) => native.noReplace(from, to), from, to) ? 'renamed' : 'unsupported';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
    throw e;
  }
}
