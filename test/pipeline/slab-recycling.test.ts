import { describe, expect, it } from 'vitest';
import { createEncoder } from '../../src/pipeline/compress.js';
import { ZstdDecoder } from '../../src/pipeline/zstd-codec.js';

/** 24 MiB of text-like data (compressible, so each input byte expands), compressed as one stream. */
const plain = Buffer.from(
  Array.from({ length: 400_000 }, (_, i) => JSON.stringify({ id: i, user: `user${i % 977}`, on: i % 3 === 0 }))
    .join('\n')
    .repeat(2),
);
const compressed = ((): Buffer => {
  const encoder = createEncoder({ level: 1, workers: 0 });
  const out: Buffer[] = [];
  encoder.write(plain, out);
  encoder.end(out);
  return Buffer.concat(out);
})();

/** Decodes `compressed` in 64 KiB inputs; `onPiece` sees every output piece as it comes. */
function decode(onPiece: (piece: Buffer, decoder: ZstdDecoder) => void): void {
  const decoder = new ZstdDecoder();
  for (let at = 0; at < compressed.length; at += 65_536) {
    let src = compressed.subarray(at, at + 65_536);
    for (let more = true; src.length > 0 || more; ) {
      const step = decoder.step(src);
      src = src.subarray(step.consumed);
      more = step.more;
      if (step.output.length > 0) onPiece(step.output, decoder);
    }
  }
  decoder.finish();
}

describe('decoder output slabs', () => {
  it('are carved again once every piece of them is given back, so a whole stream needs two', () => {
    const memory = new Set<ArrayBufferLike>();
    const copies: Buffer[] = [];
    decode((piece, decoder) => {
      memory.add(piece.buffer);
      copies.push(Buffer.from(piece));
      decoder.recycle(piece);
    });
    expect(Buffer.concat(copies).equals(plain)).toBe(true);
    expect(plain.length).toBeGreaterThan(20 << 20);
    expect(memory.size).toBeLessThanOrEqual(2);
  });

  it('are never written again while any piece of them is held, whatever is given back around it', () => {
    const held: { piece: Buffer; copy: Buffer }[] = [];
    const copies: Buffer[] = [];
    let seed = 7;
    decode((piece, decoder) => {
      const copy = Buffer.from(piece);
      copies.push(copy);
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      if (seed % 5 === 0) held.push({ piece, copy });
      else {
        decoder.recycle(piece);
        decoder.recycle(piece); // a second hand-back is ignored
      }
      decoder.recycle(Buffer.from(copy)); // so is a buffer it never made
    });
    expect(held.length).toBeGreaterThan(3);
    for (const { piece, copy } of held) expect(piece.equals(copy)).toBe(true);
    expect(Buffer.concat(copies).equals(plain)).toBe(true);
  });

  it('without hand-backs, are all fresh: nothing is reused behind a holder it cannot see', () => {
    const memory = new Set<ArrayBufferLike>();
    decode((piece) => memory.add(piece.buffer));
    expect(memory.size).toBeGreaterThanOrEqual(Math.floor(plain.length / (1 << 20)));
  });
});
