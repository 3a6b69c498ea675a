import { describe, expect, it } from 'vitest';
import { WriteGatherer } from '../src/targets/write-gatherer.js';

describe('WriteGatherer', () => {
  it('hands out pieces of at least the size, in order, losing and adding nothing', () => {
    const g = new WriteGatherer(1000);
    const input: Buffer[] = [];
    for (let i = 0; i < 300; i++) input.push(Buffer.alloc(1 + ((i * 37) % 250), i & 0xff));
    input.push(Buffer.alloc(5000, 1), Buffer.alloc(3, 2));
    const out: Buffer[] = [];
    for (const chunk of input) {
      const piece = g.add(chunk);
      if (piece) out.push(piece);
    }
    const rest = g.rest();
    expect(rest).toBeDefined();
    out.push(rest!);
    for (const piece of out.slice(0, -1)) expect(piece.length).toBeGreaterThanOrEqual(1000);
    expect(Buffer.concat(out).equals(Buffer.concat(input))).toBe(true);
    expect(g.rest()).toBeUndefined();
  });

  it('passes a large chunk through without copying it when nothing is gathered', () => {
    const g = new WriteGatherer(1000);
    const big = Buffer.alloc(4096);
    expect(g.add(big)).toBe(big);
    expect(g.add(Buffer.alloc(10))).toBeUndefined();
    expect(g.rest()?.length).toBe(10);
  });
});
