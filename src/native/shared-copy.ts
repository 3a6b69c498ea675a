import { loadAddon, nativeDisabled } from './addon.js';

/** Copies `source` into `target` at `at` (it must fit); returns the bytes copied. */
export type CopyInto = (target: Buffer, at: number, source: Buffer) => number;

/**
 * The copier for memory shared between threads (the packers' job and output slots): shared-copy.c's
 * memcpy where it compiled, since V8 copies into shared memory several times slower; Buffer.copy
 * under AZSBACKUP_NATIVE=off or without the addon. Taken once per stream or sealer, not per copy.
 */
export function sharedCopier(): CopyInto {
  if (nativeDisabled()) return copyByNode;
  addon ??= loadAddon<Addon>('shared_copy') ?? null;
  return addon ? addon.copyInto : copyByNode;
}

function copyByNode(target: Buffer, at: number, source: Buffer): number {
  if (!(at >= 0 && source.length <= target.length - at))
    throw new RangeError(`copyInto(target, at, source): the source does not fit in the target at that offset`);
  return source.copy(target, at);
}

interface Addon {
  copyInto: CopyInto;
}

let addon: Addon | null | undefined;
