import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { DEFAULT_CDC_PARAMS, planCdc, type CdcParams } from '../../src/repository/cdc.js';
import { nativeFindCut } from '../../src/repository/cdc-native.js';
import { ContentChunker, contentChunks, createChunkerStream } from '../../src/repository/chunker.js';
import { gearTable } from '../../src/repository/gear.js';
import { inPieces, pseudoRandomBytes } from '../support/pseudo-random.js';
import { Readable } from 'node:stream';

const gear = gearTable(Buffer.alloc(32));
const SMALL: CdcParams = { minSize: 4096, normalSize: 16384, maxSize: 65536 };

function cut(
  data: Buffer,
  opts: { params?: CdcParams; implementation?: 'auto' | 'typescript'; piece?: number; table?: Uint32Array } = {},
): Buffer[] {
  const chunker = new ContentChunker({ gear: opts.table ?? gear, params: opts.params, implementation: opts.implementation });
  const out: Buffer[] = [];
  const piece = opts.piece ?? data.length;
  for (let at = 0; at < data.length; at += piece) chunker.write(data.subarray(at, at + piece), out);
  chunker.end(out);
  return out;
}

const sizes = (chunks: Buffer[]) => chunks.map((c) => c.length);
const digests = (chunks: Buffer[]) => chunks.map((c) => createHash('sha256').update(c).digest('hex'));

describe('gear table', () => {
  it('is the documented SHA-256 derivation (pinned words, so an independent reader can check theirs)', () => {
    expect(gear[0]!.toString(16)).toBe('af15aa67');
    expect(gear[255]!.toString(16)).toBe('4bec834d');
  });

  it('depends on the seed: another repository cuts the same data elsewhere', () => {
    const data = pseudoRandomBytes('seeded', 8 << 20);
    const other = gearTable(Buffer.alloc(32, 1));
    expect(sizes(cut(data, { params: SMALL, table: other }))).not.toEqual(sizes(cut(data, { params: SMALL })));
  });

  it('refuses a seed that is not 32 bytes', () => {
    expect(() => gearTable(Buffer.alloc(16))).toThrow(AzsError);
  });
});

describe('content-defined chunker', () => {
  it('cuts a fixed input at the same places on every run (pinned)', () => {
    expect(sizes(cut(pseudoRandomBytes('pinned', 4 << 20), { implementation: 'typescript' }))).toEqual([
      351640, 327409, 272328, 377960, 292526, 307310, 311127, 270155, 291222, 280504, 97545, 303487, 457319, 253772,
    ]);
  });

  it('keeps every chunk but the last within min and max, and gathers them around normal', () => {
    const data = pseudoRandomBytes('bounds', 8 << 20);
    const chunks = cut(data, { params: SMALL, piece: 10_007 });
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    for (const c of chunks.slice(0, -1)) {
      expect(c.length).toBeGreaterThanOrEqual(SMALL.minSize);
      expect(c.length).toBeLessThanOrEqual(SMALL.maxSize);
    }
    const mean = data.length / chunks.length;
    expect(mean).toBeGreaterThan(SMALL.normalSize * 0.8);
    expect(mean).toBeLessThan(SMALL.normalSize * 1.6);
  });

  it('cuts data without content-defined boundaries (zeros) at max, with the default bounds', () => {
    const chunks = cut(Buffer.alloc(10 << 20), { piece: 1 << 16 });
    expect(sizes(chunks)).toEqual(new Array(10).fill(1 << 20));
  });

  it('gives one empty chunk for an empty stream, and a short stream whole', () => {
    expect(sizes(cut(Buffer.alloc(0)))).toEqual([0]);
    expect(sizes(cut(Buffer.alloc(1000, 7)))).toEqual([1000]);
  });

  it('finds the same cuts however the input is split into writes', () => {
    const data = pseudoRandomBytes('split', 4 << 20);
    const whole = sizes(cut(data, { params: SMALL, implementation: 'typescript' }));
    for (const piece of [1, 4093, 65_536]) {
      const slice = piece === 1 ? data.subarray(0, 300_000) : data;
      const expected = piece === 1 ? sizes(cut(slice, { params: SMALL, implementation: 'typescript' })) : whole;
      expect(sizes(cut(slice, { params: SMALL, implementation: 'typescript', piece }))).toEqual(expected);
    }
  });

  it.each([
    ['at the start', 0],
    ['in the middle', 20 << 20],
  ])('keeps all but the chunks around an insertion %s', (_where, at) => {
    const data = pseudoRandomBytes('insert', 48 << 20);
    const edited = Buffer.concat([data.subarray(0, at), pseudoRandomBytes('inserted', 777), data.subarray(at)]);
    const before = digests(cut(data));
    const after = digests(cut(edited));
    const kept = after.filter((d) => before.includes(d)).length;
    expect(before.length).toBeGreaterThan(30);
    // The chunk the bytes went into changes, and at most the next while the cuts fall in step again.
    expect(after.length - kept).toBeGreaterThanOrEqual(1);
    expect(after.length - kept).toBeLessThanOrEqual(2);
    expect(before.length - kept).toBeLessThanOrEqual(2);
  });

  it('holds no more than one chunk and the piece being written, however long the stream', async () => {
    const piece = 256 * 1024;
    const params = DEFAULT_CDC_PARAMS;
    let produced = 0;
    let emitted = 0;
    let worstLag = 0;
    async function* source(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 256; i++) {
        // 64 MiB in all, made as it is read: zeros and random alternate so both kinds of cut happen
        const p = i % 32 < 16 ? Buffer.alloc(piece) : pseudoRandomBytes(`lag ${i}`, piece);
        produced += p.length;
        yield p;
      }
    }
    for await (const chunk of contentChunks(source(), { gear, params })) {
      worstLag = Math.max(worstLag, produced - emitted);
      emitted += chunk.length;
    }
    expect(emitted).toBe(64 << 20);
    expect(worstLag).toBeLessThanOrEqual(params.maxSize + piece);
  });

  it('as a Transform stream emits the same chunks as the object', async () => {
    const data = pseudoRandomBytes('transform', 4 << 20);
    const chunks: Buffer[] = [];
    for await (const c of Readable.from(inPieces(data, 50_000)).pipe(createChunkerStream({ gear, params: SMALL })))
      chunks.push(c as Buffer);
    expect(sizes(chunks)).toEqual(sizes(cut(data, { params: SMALL })));
  });

  it('refuses bounds it cannot honour', () => {
    expect(() => planCdc({ minSize: 4096, normalSize: 12_000, maxSize: 65_536 })).toThrow(AzsError);
    expect(() => planCdc({ minSize: 32, normalSize: 4096, maxSize: 65_536 })).toThrow(AzsError);
    expect(() => planCdc({ minSize: 8192, normalSize: 4096, maxSize: 65_536 })).toThrow(AzsError);
  });
});

describe.skipIf(!nativeFindCut())('native scanner (src/native/content-cut.c)', () => {
  it('is the one used when it compiled', () => {
    expect(new ContentChunker({ gear }).implementation).toBe('native');
  });

  it.each([
    ['default bounds', DEFAULT_CDC_PARAMS, 24 << 20],
    ['small bounds', SMALL, 8 << 20],
  ])('cuts exactly where the TypeScript scanner does (%s), whatever the write sizes', (_name, params, bytes) => {
    const data = Buffer.concat([pseudoRandomBytes('native', bytes), Buffer.alloc(9 << 20), pseudoRandomBytes('native 2', 1 << 20)]);
    const ts = sizes(cut(data, { params, implementation: 'typescript', piece: 65_536 }));
    for (const piece of [7919, 65_536, data.length]) expect(sizes(cut(data, { params, implementation: 'auto', piece }))).toEqual(ts);
  });
});
