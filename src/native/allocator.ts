import { addonPath, loadAddon, nativeDisabled } from './addon.js';

/**
 * Process-wide allocator settings for streaming work (see malloc-tuning.c for why). Buffers below
 * 1 MiB (stream pieces, tar headers, messages) come from the heap, and up to 16 MiB freed at its
 * top stays mapped, so the pieces freed in one collection are reused without page faults. Larger
 * ones (the packers' 2 MiB job and output slots, a pack's blobs sealed outside a slot) are mapped
 * and unmapped on their own: kept in the heap they left it fragmented, and a backup of the 5 GiB
 * bench corpus peaked 10-15 MiB higher (201-206 MiB against 187-196 with 4 job and 3 output slots,
 * three runs each). The earlier settings (32 MiB, 128 MiB and a 64 MiB pad) were for a restore
 * that allocated a fresh buffer per read and per chunk; its batches and pieces now go round.
 */
const MMAP_THRESHOLD_BYTES = 1024 * 1024;
const TRIM_THRESHOLD_BYTES = 16 * 1024 * 1024;
const TOP_PAD_BYTES = 4 * 1024 * 1024;

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
