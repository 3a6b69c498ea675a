import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../src/pipeline/byte-queue.js';

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
});
