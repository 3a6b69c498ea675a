import { loadAddon, nativeDisabled } from './addon.js';

/**
 * remove-beneath.c: removes the entry `segments` below `root` (a file, a link, or a folder with
 * everything in it) without following a symbolic link, even one put in place while it runs, and
 * fsyncs the folder that held it. Unavailable when the addon was not compiled, under
 * AZSBACKUP_NATIVE=off, or off Linux: the caller then removes by path.
 */

interface RemoveAddon {
  removeBeneath(root: string, segments: readonly string[]): Promise<void>;
}

let addon: RemoveAddon | null | undefined;

/** The removal, or undefined where the addon is not available here (nothing was done). */
export function removeBeneath(root: string, segments: readonly string[]): Promise<void> | undefined {
  if (nativeDisabled()) return undefined;
  if (addon === undefined) addon = process.platform === 'linux' ? (loadAddon<RemoveAddon>('remove_beneath') ?? null) : null;
  return addon?.removeBeneath(root, segments);
}
