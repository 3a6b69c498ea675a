import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tuneAllocator } from '../../src/native/allocator.js';
import { setNativeAddons } from '../support/native-switch.js';

const host = fileURLToPath(new URL('../../dist/host/main.js', import.meta.url));

/**
 * RSS (MiB) of a fresh node process above what it had before, once it has allocated, filled and
 * dropped 64 MiB of 2 MiB buffers three times over, each followed by a small buffer that stays
 * (so the freed ones do not lie at the top of the heap, where glibc would trim them anyway): the
 * pattern of a backup's job and output slots between the long-lived bookkeeping of its walk.
 */
function residentAfterLargeBuffers(tune: boolean): number {
  const script = `
    const { tuneAllocator } = await import(${JSON.stringify(host)});
    if (${tune} && tuneAllocator() !== 'tuned') throw new Error('not tuned');
    const rss = () => process.memoryUsage.rss() / 1048576;
    // Backing stores are freed after a collection, on V8's threads: collect and wait, thrice.
    const settle = async () => { for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); } };
    const start = rss();
    const kept = [];
    for (let r = 0; r < 3; r++) {
      let live = [];
      for (let i = 0; i < 32; i++) {
        live.push(Buffer.allocUnsafeSlow(2 << 20).fill(i));
        kept.push(Buffer.allocUnsafeSlow(64 << 10).fill(1));
      }
      live = [];
      await settle();
    }
    console.log(rss() - start);`;
  return Number(execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' }).trim());
}

describe('allocator tuning', () => {
  it('is compiled and taken by glibc here', () => {
    const out = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', `console.log((await import(${JSON.stringify(host)})).tuneAllocator())`],
      { encoding: 'utf8' },
    );
    expect(out.trim()).toBe('tuned');
  });

  it('hands large buffers back to the system once they are freed, so they do not stay in the peak', () => {
    // Kept in the heap (glibc's defaults raise the mmap threshold after the first free; the
    // earlier tuning set it to 32 MiB) the 64 MiB stay resident between the small buffers.
    const plain = residentAfterLargeBuffers(false);
    const tuned = residentAfterLargeBuffers(true);
    expect(plain).toBeGreaterThan(48);
    expect(tuned).toBeLessThan(24);
  });

  it('leaves the defaults and says so when the addon was not compiled', () => {
    expect(tuneAllocator('/nonexistent/malloc_tuning.node')).toBe('not-built');
  });

  it('leaves the defaults and says so under AZSBACKUP_NATIVE=off', () => {
    const restore = setNativeAddons(false);
    try {
      expect(tuneAllocator()).toBe('off');
    } finally {
      restore();
    }
  });
});
