import { loadAddon, nativeDisabled } from '../native/addon.js';
import type { CdcPlan, FindCut } from './cdc.js';

/** src/native/content-cut.c: the same scan as findCutTs, over the same arguments packed in typed arrays. */
interface Addon {
  findCut(gear: Uint32Array, plan: Int32Array, buf: Uint8Array, from: number, to: number, state: Int32Array): number;
}

let addon: Addon | null | undefined;
const packedPlans = new WeakMap<CdcPlan, Int32Array>();
const state = new Int32Array(2);

function packed(plan: CdcPlan): Int32Array {
  let p = packedPlans.get(plan);
  if (!p) {
    p = Int32Array.of(plan.minSize, plan.normalSize, plan.maxSize, plan.maskSmall, plan.maskLarge);
    packedPlans.set(plan, p);
  }
  return p;
}

/** The C scanner, or undefined when the addon did not compile or AZSBACKUP_NATIVE=off (then cdc.ts's runs). */
export function nativeFindCut(): FindCut | undefined {
  if (nativeDisabled()) return undefined;
  addon ??= loadAddon<Addon>('content_cut') ?? null;
  const native = addon;
  if (!native) return undefined;
  return (gear, plan, buf, from, to, scan) => {
    state[0] = scan.length;
    state[1] = scan.hash;
    const cut = native.findCut(gear, packed(plan), buf, from, to, state);
    scan.length = state[0]!;
    scan.hash = state[1]!;
    return cut;
  };
}
