import { loadAddon, nativeDisabled } from './addon.js';

/**
 * renameat2(RENAME_EXCHANGE) from rename-exchange.c: the two names swap their files in one step.
 * Unavailable when the addon was not compiled, under AZSBACKUP_NATIVE=off, off Linux, or on a file
 * system or kernel that does not support it; the caller then uses its journalled fallback.
 */

let addon: { exchange(a: string, b: string): void } | null | undefined;

/** Codes meaning "this kernel or file system cannot exchange", not "these paths are wrong". */
const UNSUPPORTED = new Set(['EINVAL', 'ENOSYS', 'ENOTSUP', 'EOPNOTSUPP']);

/** True once `a` and `b` have swapped; false when exchanging is not available here (nothing changed). */
export function exchangeNames(a: string, b: string): boolean {
  if (nativeDisabled()) return false;
  if (addon === undefined)
    addon = process.platform === 'linux' ? (loadAddon<{ exchange(a: string, b: string): void }>('rename_exchange') ?? null) : null;
  if (!addon) return false;
  try {
    addon.exchange(a, b);
    return true;
  } catch (e) {
    if (UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) return false;
    throw Object.assign(new Error(`${(e as Error).message}: '${a}' and '${b}'`), { code: (e as NodeJS.ErrnoException).code });
  }
}
