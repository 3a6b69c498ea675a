import { createHash, randomBytes } from 'node:crypto';
import { Readable, Transform, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { describeWithAndWithoutAddons } from '../support/native-switch.js';
import { AzsError } from '../../src/errors.js';
import { createCompressStream, createDecompressStream } from '../../src/pipeline/compress.js';
import { createHashTap, openRoleStream, sealRoleStream } from '../../src/pipeline/role-stream.js';
import type { ChunkCipherOptions } from '../../src/pipeline/chunk-cipher.js';

const opts: ChunkCipherOptions = { dataKey: randomBytes(32), backupName: 'b-1', roleName: 'CA', fileName: 'CA.azsbak' };

function collect(): { sink: Writable; result: () => Buffer } {
  const parts: Buffer[] = [];
  return {
    sink: new Writable({
      write(c: Buffer, _e, cb) {
        parts.push(c);
        cb();
      },
    }),
    result: () => Buffer.concat(parts),
  };
}

function jsonRecords(count: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(JSON.stringify({ id: i, user: `user${i % 977}`, role: 'Identity', enabled: i % 3 === 0 }));
  return Buffer.from(lines.join('\n'));
}

/** Bytes waiting in the buffers of these stream stages, both sides. */
function heldBytes(stages: Duplex[]): number {
  return stages.reduce((n, s) => n + s.readableLength + s.writableLength, 0);
}

/** Deterministic pseudo-random bytes generated as they are read, so the test never holds the whole input. */
function generated(totalBytes: number, sliceBytes = 256 * 1024): Readable {
  let produced = 0;
  let counter = 0;
  let state = 0x9e3779b9 | 0;
  return new Readable({
    highWaterMark: sliceBytes,
    read() {
      if (produced >= totalBytes) return void this.push(null);
      const n = Math.min(sliceBytes, totalBytes - produced);
      const slice = Buffer.allocUnsafe(n);
      // Half compressible text, half xorshift output (incompressible, and cheap to make).
      const text = Buffer.from(`{"record":${counter++},"payload":"${'x'.repeat(40)}"}\n`);
      const half = Math.floor(n / 2) & ~3;
      for (let at = 0; at < half; at += text.length) text.copy(slice, at, 0, Math.min(text.length, half - at));
      for (let at = half; at + 4 <= n; at += 4) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        slice.writeInt32LE(state | 0, at);
      }
      produced += n;
      this.push(slice);
    },
  });
}

describe('compression stage', () => {
  it('round-trips and actually compresses', async () => {
    const data = jsonRecords(20_000);
    const packed = collect();
    await pipeline(Readable.from([data]), createCompressStream(), packed.sink);
    expect(packed.result().length).toBeLessThan(data.length / 4);
    const unpacked = collect();
    await pipeline(Readable.from([packed.result()]), createDecompressStream(), unpacked.sink);
    expect(unpacked.result().equals(data)).toBe(true);
  });

  it('reports data that is not zstd as DecompressionFailed, exit 12', async () => {
    const err = await pipeline(Readable.from([Buffer.from('definitely not zstd')]), createDecompressStream(), collect().sink).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AzsError);
    expect((err as AzsError).errorId).toBe('DecompressionFailed');
    expect((err as AzsError).exitCode).toBe(12);
  });

  it('reports a stream cut inside a zstd frame as DecompressionFailed', async () => {
    const packed = collect();
    await pipeline(Readable.from([randomBytes(200_000)]), createCompressStream({ workers: 0 }), packed.sink);
    const cut = packed.result().subarray(0, 1000);
    const err = await pipeline(Readable.from([cut]), createDecompressStream(), collect().sink).catch((e: unknown) => e);
    expect((err as AzsError).errorId).toBe('DecompressionFailed');
    expect((err as AzsError).message).toMatch(/middle of a compressed frame/);
  });

  it('refuses a compression level out of range', () => {
    expect(() => createCompressStream(0)).toThrow(AzsError);
    expect(() => createCompressStream(23)).toThrow(/outside 1\.\.19/);
  });
});

describeWithAndWithoutAddons('sealing and opening', () => {
  describe('role streams', () => {
    it.each([0, 1, 5000, 3 * 1024 * 1024 + 17])(
      'seal then open round-trips %i bytes, and the hash tap records the stored file',
      async (size) => {
        const data = Buffer.concat([jsonRecords(Math.ceil(size / 100)), randomBytes(size)]).subarray(0, size);
        const tap = createHashTap();
        const stored = collect();
        await pipeline(Readable.from(data.length ? [data] : []), sealRoleStream(opts), tap, stored.sink);
        const file = stored.result();
        expect(tap.digest()).toEqual({ sha256: createHash('sha256').update(file).digest('hex'), bytes: file.length });
        const restored = collect();
        await pipeline(Readable.from([file]), openRoleStream(opts), restored.sink);
        expect(restored.result().equals(data)).toBe(true);
      },
    );

    it('hands each stored chunk back once read through, and both sides may overwrite what they got back', async () => {
      const data = Buffer.concat([jsonRecords(40_000), randomBytes(2 * 1024 * 1024)]);
      const stored = collect();
      await pipeline(Readable.from([data]), sealRoleStream(opts), stored.sink);
      const file = stored.result();
      // Read in odd-sized pieces, so chunks straddle them (and the header sits inside the first).
      const pieces: Buffer[] = [];
      for (let at = 0; at < file.length; at += 100_003) pieces.push(Buffer.from(file.subarray(at, at + 100_003)));
      const opening = openRoleStream(opts);
      const back = new Set<Buffer>();
      opening.handInputBackTo((chunk) => {
        expect(back.has(chunk)).toBe(false);
        back.add(chunk);
        chunk.fill(0xee); // what the source's next read would do to it
      });
      const parts: Buffer[] = [];
      const sink = new Writable({
        write(c: Buffer, _e, cb) {
          parts.push(Buffer.from(c));
          opening.recycle(c);
          c.fill(0xdd); // and what the decoder's next output would do to this
          cb();
        },
      });
      await pipeline(Readable.from(pieces), opening, sink);
      expect(Buffer.concat(parts).equals(data)).toBe(true);
      expect(back.size).toBe(pieces.length);
    });

    it('hands input back once zstd has it and takes sealed records back once stored; both sides may overwrite them', async () => {
      const data = Buffer.concat([jsonRecords(60_000), randomBytes(24 * 1024 * 1024)]);
      const pieces: Buffer[] = [];
      for (let at = 0; at < data.length; at += 100_003) pieces.push(Buffer.from(data.subarray(at, at + 100_003)));
      const seal = sealRoleStream(opts);
      const back = new Set<Buffer>();
      seal.handInputBackTo((chunk) => {
        expect(back.has(chunk)).toBe(false);
        back.add(chunk);
        chunk.fill(0xee); // what the program's next read would do to it
      });
      const stored: Buffer[] = [];
      const recordMemory = new Set<ArrayBufferLike>();
      const share = new Writable({
        write(c: Buffer, _e, cb) {
          stored.push(Buffer.from(c));
          if (c.length > 1024 * 1024) recordMemory.add(c.buffer);
          seal.recycle(c);
          c.fill(0xdd); // and what the next sealed chunk would do to this
          cb();
        },
      });
      await pipeline(Readable.from(pieces), seal, share);
      expect(back.size).toBe(pieces.length);
      const restored = collect();
      await pipeline(Readable.from([Buffer.concat(stored)]), openRoleStream(opts), restored.sink);
      expect(restored.result().equals(data)).toBe(true);
      // Sealed into the same few slabs again and again, where the addon seals (Node's cipher
      // allocates its own). A few, not one: zstd's workers can hand over several records' worth at
      // once; without the hand-back every record would have its own.
      if (!process.env.AZSBACKUP_NATIVE) {
        const records = stored.filter((c) => c.length > 1024 * 1024).length;
        expect(records).toBeGreaterThan(23);
        expect(recordMemory.size).toBeLessThanOrEqual(records / 3);
      }
    });

    it('refuses the stored file of another role, and a tampered one, before releasing bad data', async () => {
      const data = randomBytes(3 * 1024 * 1024);
      const stored = collect();
      await pipeline(Readable.from([data]), sealRoleStream(opts), stored.sink);
      const file = stored.result();
      const other = collect();
      const err = await pipeline(Readable.from([file]), openRoleStream({ ...opts, roleName: 'Identity' }), other.sink).catch(
        (e: unknown) => e,
      );
      expect((err as AzsError).errorId).toBe('ChunkAuthenticationFailed');
      expect(other.result().length).toBe(0);
      const bad = Buffer.from(file);
      bad[bad.length - 100]! ^= 4;
      const partial = collect();
      const err2 = await pipeline(Readable.from([bad]), openRoleStream(opts), partial.sink).catch((e: unknown) => e);
      expect((err2 as AzsError).errorId).toBe('ChunkAuthenticationFailed');
      expect(data.subarray(0, partial.result().length).equals(partial.result())).toBe(true);
      expect(partial.result().length).toBeLessThan(data.length);
    });

    it('keeps working with a slow asynchronous consumer (no lost wake-ups)', async () => {
      const data = Buffer.concat([jsonRecords(50_000), randomBytes(4 * 1024 * 1024), jsonRecords(50_000)]);
      const stored = collect();
      await pipeline(Readable.from([data]), sealRoleStream({ ...opts, chunkSize: 64 * 1024 }), stored.sink);
      const parts: Buffer[] = [];
      const slow = new Writable({
        highWaterMark: 1024,
        write(c: Buffer, _e, cb) {
          parts.push(c);
          setImmediate(cb);
        },
      });
      await pipeline(Readable.from([stored.result()]), openRoleStream(opts), slow);
      expect(Buffer.concat(parts).equals(data)).toBe(true);
    });

    it('expands a highly compressible file (1 GiB of zeros) under backpressure, not all at once', async () => {
      const total = 1024 * 1024 * 1024;
      const zeros = Buffer.alloc(1024 * 1024);
      let sent = 0;
      const source = new Readable({
        read() {
          if (sent >= total) return void this.push(null);
          sent += zeros.length;
          this.push(zeros);
        },
      });
      const stored = collect();
      await pipeline(source, sealRoleStream({ ...opts, chunkSize: 4 * 1024 * 1024 }), stored.sink);
      const file = stored.result();
      expect(file.length).toBeLessThan(4 * 1024 * 1024); // the whole GiB fits in one chunk
      const open = openRoleStream(opts);
      let most = 0;
      let received = 0;
      await pipeline(
        Readable.from([file]),
        open,
        new Writable({
          write(c: Buffer, _e, cb) {
            received += c.length;
            most = Math.max(most, heldBytes([open]));
            setImmediate(cb);
          },
        }),
      );
      expect(received).toBe(total);
      // Expanded step by step as the consumer takes it: never more than a few MiB waiting.
      expect(most).toBeLessThan(4 * 1024 * 1024);
    });

    it('digest() refuses to answer before the stream finished', () => {
      expect(() => createHashTap().digest()).toThrow(/before the stream finished/);
    });

    it('streams 200 MB through seal, hash and open with bounded buffers (memory does not grow with the data)', async () => {
      const total = 200 * 1024 * 1024;
      const tap = createHashTap();
      const inHash = createHash('sha256');
      const outHash = createHash('sha256');
      const seal = sealRoleStream(opts);
      const open = openRoleStream(opts);
      let outBytes = 0;
      let most = 0;
      await pipeline(
        generated(total),
        new Transform({
          transform(c: Buffer, _e, cb) {
            inHash.update(c);
            cb(null, c);
          },
        }),
        seal,
        tap,
        open,
        new Writable({
          write(c: Buffer, _e, cb) {
            outHash.update(c);
            outBytes += c.length;
            most = Math.max(most, heldBytes([seal, tap, open]));
            cb();
          },
        }),
      );
      expect(outBytes).toBe(total);
      expect(outHash.digest('hex')).toBe(inHash.digest('hex'));
      expect(tap.digest().bytes).toBeGreaterThan(total / 3);
      // Peak RSS on 5 GiB is the benchmark's figure; here: what the stages hold stays a few chunks.
      expect(most).toBeLessThan(16 * 1024 * 1024);
    });
  });
});
