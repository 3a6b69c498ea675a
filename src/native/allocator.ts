import { addonPath, loadAddon, nativeDisabled } from './addon.js';

/**
 * Process-wide allocator settings for streaming work (see malloc-tuning.c for why). Every buffer
 * up to 32 MiB (glibc's largest mmap threshold) comes from the heap, and up to 128 MiB freed at
 * its top stays mapped, so buffers freed in one collection are reused without page faults. Memory
 * that is never touched costs nothing; a restore's peak RSS rose by about 6 MiB.
 */
const MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024;
const TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024;
const TOP_PAD_BYTES = 64 * 1024 * 1024;

export type AllocatorTuning =
  /** glibc took the settings. */
  | 'tuned'
  /** The addon was not compiled (npm ci --ignore-scripts, no compiler): defaults stay. */
  | 'not-built'
  /** Not glibc, or glibc refused a value: defaults stay. */
  | 'refused'
  /** AZSBACKUP_NATIVE=off: defaults stay. */
  | 'off';

/** Call once, first thing in a process that moves backup data; it only ever changes speed. */
export function tuneAllocator(file: string = addonPath('malloc_tuning')): AllocatorTuning {
  if (nativeDisabled()) return 'off';
  const addon = loadAddon<{ tune(mmapThreshold: number, trimThreshold: number, topPad: number): boolean }>('malloc_tuning', file);
  if (!addon) return 'not-built';
  return addon.tune(MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES, TOP_PAD_BYTES) ? 'tuned' : 'refused';
}
