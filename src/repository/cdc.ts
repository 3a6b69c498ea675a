import { AzsError } from '../errors.js';

/**
 * Where to cut: FastCDC (Xia et al., USENIX ATC 2016) with normalized chunking, on a 32-bit gear
 * hash, written for this project from the paper's description.
 *
 * For every byte b the hash moves on as h = (h << 1) + gear[b] (mod 2^32), so after 32 bytes it
 * depends only on the last 32 bytes (a shift by one per byte pushes older bytes out of the word).
 * Measured from the start of the current chunk, at length L (bytes before the candidate cut):
 *
 *   L <  min - 32      bytes are skipped, not hashed (FastCDC's cut-point skipping)
 *   min - 32 ≤ L < min bytes are hashed but no cut is tested: the window fills, so every test
 *                      below depends on the 32 bytes before it and on nothing else
 *   min ≤ L+1 ≤ normal after hashing the byte at L, cut after it when h & maskSmall == 0
 *   normal < L+1 < max cut after it when h & maskLarge == 0
 *   L+1 == max         cut after it anyway
 *
 * The masks take the high bits of h (they depend on the most bytes): maskSmall has log2(normal)+2
 * bits, maskLarge log2(normal)-2 ("normalization level 2"), so sizes gather around `normal`. The
 * last chunk of a stream is whatever is left (it may be shorter than min, or empty only when the
 * stream is).
 */
export interface CdcParams {
  minSize: number;
  normalSize: number;
  maxSize: number;
}

/** The repository's bounds: 64 KiB ≤ chunk ≤ 1 MiB, gathered around 256 KiB (see docs/REPOSITORY.md section 3 on why). */
export const DEFAULT_CDC_PARAMS: CdcParams = Object.freeze({
  minSize: 64 * 1024,
  normalSize: 256 * 1024,
  maxSize: 1024 * 1024,
});

export const GEAR_WINDOW = 32;
const NORMALIZATION = 2;

/** The params checked, with their masks. */
export interface CdcPlan extends CdcParams {
  maskSmall: number;
  maskLarge: number;
}

function highBits(n: number): number {
  return n >= 32 ? 0xffffffff | 0 : (0xffffffff << (32 - n)) | 0;
}

export function planCdc(params: CdcParams = DEFAULT_CDC_PARAMS): CdcPlan {
  const { minSize, normalSize, maxSize } = params;
  const bits = Math.log2(normalSize);
  const ok =
    Number.isInteger(bits) &&
    bits >= 8 &&
    bits <= 28 &&
    Number.isInteger(minSize) &&
    Number.isInteger(maxSize) &&
    minSize >= 2 * GEAR_WINDOW &&
    minSize < normalSize &&
    normalSize < maxSize &&
    maxSize <= 64 * 1024 * 1024;
  if (!ok) {
    throw new AzsError(`Chunk bounds ${minSize}/${normalSize}/${maxSize} are not usable.`, {
      errorId: 'InvalidChunkBounds',
      category: 'InvalidArgument',
      recommendedAction: `Use 64 ≤ min < normal < max ≤ 64 MiB with normal a power of two from 256 B to 256 MiB, e.g. 256 KiB / 1 MiB / 4 MiB.`,
    });
  }
  return { minSize, normalSize, maxSize, maskSmall: highBits(bits + NORMALIZATION), maskLarge: highBits(bits - NORMALIZATION) };
}

/** What a scan carries from one buffer to the next: the current chunk's length so far and the hash. */
export interface ScanState {
  length: number;
  hash: number;
}

/**
 * Scans buf[from, to) for the end of the current chunk, which is `state.length` bytes long before
 * buf[from]. Returns the index just after the cut, or -1 when there is none in this range; either
 * way `state` holds the length and hash at the returned index (at `to` for -1), and a caller that
 * cut resets it to { length: 0, hash: 0 } itself.
 */
export type FindCut = (gear: Uint32Array, plan: CdcPlan, buf: Uint8Array, from: number, to: number, state: ScanState) => number;

export const findCutTs: FindCut = (gear, plan, buf, from, to, state) => {
  const base = from - state.length; // where the current chunk starts, in buf's coordinates
  let h = state.hash | 0;
  let i = Math.max(from, base + plan.minSize - GEAR_WINDOW);
  let end = Math.min(to, base + plan.minSize - 1);
  for (; i < end; i++) h = ((h << 1) + gear[buf[i]!]!) | 0;
  const small = plan.maskSmall;
  end = Math.min(to, base + plan.normalSize);
  for (; i < end; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0;
    if ((h & small) === 0) return cutAt(state, i + 1, base, h);
  }
  const large = plan.maskLarge;
  end = Math.min(to, base + plan.maxSize - 1);
  for (; i < end; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0;
    if ((h & large) === 0) return cutAt(state, i + 1, base, h);
  }
  if (i < to && i === base + plan.maxSize - 1) return cutAt(state, i + 1, base, h);
  state.length = to - base;
  state.hash = h;
  return -1;
};

function cutAt(state: ScanState, at: number, base: number, h: number): number {
  state.length = at - base;
  state.hash = h;
  return at;
}
