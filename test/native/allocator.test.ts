import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tuneAllocator } from '../../src/native/allocator.js';
import { setNativeAddons } from '../support/native-switch.js';

const host = fileURLToPath(new URL('../../dist/host/main.js', import.meta.url));

/**
 * Minor page faults while a fresh node process allocates 64 MiB of 1 MiB buffers, fills them and
 * drops them, four times over after a first round: the pattern of a restore's stream buffers.
 */
function faultsOfBufferRounds(tune: boolean): number {
  const script = `
    const { tuneAllocator } = await import(${JSON.stringify(host)});
    if (${tune} && tuneAllocator() !== 'tuned') throw new Error('not tuned');
    let live = [];
    const round = () => {
      for (let i = 0; i < 64; i++) { const b = Buffer.allocUnsafeSlow(1 << 20); b.fill(i); live.push(b); }
      live = [];
      globalThis.gc();
    };
    round();
    const before = process.resourceUsage().minorPageFault;
    for (let r = 0; r < 4; r++) round();
    console.log(process.resourceUsage().minorPageFault - before);`;
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

  it('keeps freed stream buffers mapped, so reusing them costs no page faults', () => {
    // The fewest of three runs each: on a loaded machine one run can fault in more of node's own
    // pages, which says nothing about the buffers.
    const fewest = (tune: boolean) => Math.min(...[0, 1, 2].map(() => faultsOfBufferRounds(tune)));
    const plain = fewest(false);
    const tuned = fewest(true);
    // 4 rounds of 64 MiB touch 65 536 pages; with glibc's defaults about a quarter fault in again,
    // tuned a few hundred plus what node itself touches.
    expect(plain).toBeGreaterThan(8_000);
    expect(tuned).toBeLessThan(plain / 4);
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
