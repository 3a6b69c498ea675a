import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../../src/pipeline/byte-queue.js';

describe('ByteQueue', () => {
  it('hands out exact lengths, in order, losing and adding nothing', () => {
    const q = new ByteQueue();
    const input: Buffer[] = [];
    for (let i = 0; i < 300; i++) input.push(Buffer.alloc(1 + ((i * 37) % 250), i & 0xff));
    const out: Buffer[] = [];
    for (const chunk of input) {
      q.push(chunk);
      // As the SMB target gathers a put's pieces: whatever is queued once there is enough.
      if (q.length >= 1000) out.push(q.take(q.length));
      else if (q.length > 700) out.push(...q.takeSlices(300));
    }
    out.push(q.take(q.length));
    expect(q.length).toBe(0);
    expect(Buffer.concat(out).equals(Buffer.concat(input))).toBe(true);
  });

  it('returns a single queued slice without copying it, and splits a slice without copying', () => {
    const q = new ByteQueue();
    const big = Buffer.alloc(4096, 3);
    q.push(big);
    q.push(Buffer.alloc(0));
    const slices = q.takeSlices(1000);
    expect(slices).toHaveLength(1);
    expect(slices[0]!.buffer).toBe(big.buffer);
    expect(q.take(q.length).buffer).toBe(big.buffer);
  });

  it('with trackConsumed, reports each pushed buffer once, when its last byte has been taken', () => {
    const q = new ByteQueue({ trackConsumed: true });
    const input = Array.from({ length: 200 }, (_, i) => Buffer.alloc(1 + ((i * 53) % 300), i & 0xff));
    const consumed: Buffer[] = [];
    let taken = 0;
    for (const chunk of input) {
      q.push(chunk);
      while (q.length >= 257) {
        q.takeSlices(257);
        taken += 257;
        consumed.push(...q.takeConsumed());
      }
      // Everything reported is wholly taken: the bytes of the buffers reported add up to no more than was taken.
      expect(consumed.reduce((n, b) => n + b.length, 0)).toBeLessThanOrEqual(taken);
    }
    q.takeSlices(q.length);
    consumed.push(...q.takeConsumed());
    expect(consumed).toEqual(input);
    expect(consumed.every((b, i) => b === input[i])).toBe(true);
    expect(q.takeConsumed()).toEqual([]);
  });

  it('without it, remembers nothing', () => {
    const q = new ByteQueue();
    q.push(Buffer.alloc(10));
    q.takeSlices(10);
    expect(q.takeConsumed()).toEqual([]);
  });
});
