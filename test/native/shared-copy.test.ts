import { describe, expect, it } from 'vitest';
import { sharedCopier } from '../../src/native/shared-copy.js';
import { describeWithAndWithoutAddons } from '../support/native-switch.js';

function sharedBytes(length: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(length));
}

describeWithAndWithoutAddons('copying into shared memory', () => {
  it('copies every byte to its place and nothing around it', () => {
    const copy = sharedCopier();
    const target = sharedBytes(64).fill(0xee);
    const source = Buffer.from(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(copy(target, 10, source.subarray(5, 35))).toBe(30);
    expect([...target.subarray(0, 10)]).toEqual(Array(10).fill(0xee));
    expect(target.subarray(10, 40).equals(source.subarray(5, 35))).toBe(true);
    expect([...target.subarray(40)]).toEqual(Array(24).fill(0xee));
  });

  it('copies between two shared buffers and from a view inside the same memory', () => {
    const copy = sharedCopier();
    const memory = sharedBytes(32);
    for (let i = 0; i < 32; i++) memory[i] = i;
    copy(memory, 0, memory.subarray(16, 24));
    expect([...memory.subarray(0, 8)]).toEqual([16, 17, 18, 19, 20, 21, 22, 23]);
    const other = sharedBytes(8);
    expect(copy(other, 0, memory.subarray(0, 8))).toBe(8);
    expect([...other]).toEqual([16, 17, 18, 19, 20, 21, 22, 23]);
  });

  it('copies nothing and says so for an empty source, also at the very end', () => {
    const target = sharedBytes(4).fill(7);
    expect(sharedCopier()(target, 4, Buffer.alloc(0))).toBe(0);
    expect([...target]).toEqual([7, 7, 7, 7]);
  });

  it('refuses a source that does not fit, and writes nothing', () => {
    const copy = sharedCopier();
    const target = sharedBytes(16).fill(1);
    expect(() => copy(target, 10, Buffer.alloc(7, 9))).toThrow(RangeError);
    expect(() => copy(target, 17, Buffer.alloc(0))).toThrow(RangeError);
    expect(() => copy(target, -1, Buffer.alloc(1))).toThrow(RangeError);
    expect([...target]).toEqual(Array(16).fill(1));
  });
});

describe('the addon', () => {
  it('is what copies here (it compiled), not Buffer.copy', () => {
    expect(sharedCopier().name).toBe('copyInto');
  });
});
