import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAhead } from '../../src/targets/read-ahead.js';

/** The local folder's reader keeps several reads in flight; what it hands out must still be the file, in order. */

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-read-ahead-'));
});
afterAll(async () => fs.rm(dir, { recursive: true, force: true }));

async function open(bytes: Buffer) {
  const file = path.join(dir, `${randomBytes(4).toString('hex')}.bin`);
  await fs.writeFile(file, bytes);
  const handle = await fs.open(file, 'r');
  return { file, handle, size: bytes.length };
}

describe('readAhead', () => {
  it.each([
    ['empty', 0],
    ['smaller than a piece', 1000],
    ['whole pieces', 8 * 4096],
    ['a ragged last piece', 10 * 4096 + 17],
  ])('gives back the file byte for byte, in order (%s)', async (_name, size) => {
    const bytes = randomBytes(size);
    const { handle } = await open(bytes);
    const pieces: Buffer[] = [];
    for await (const piece of readAhead(handle, size, { pieceBytes: 4096, depth: 3 })) pieces.push(piece as Buffer);
    expect(createHash('sha256').update(Buffer.concat(pieces)).digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(pieces.every((p, i) => p.length === (i < pieces.length - 1 ? 4096 : size - 4096 * (pieces.length - 1)))).toBe(true);
    // The stream owns the handle and has closed it.
    await expect(handle.stat()).rejects.toThrow();
  });

  it('reads into pieces handed back, and never into one still held or handed back twice', async () => {
    const bytes = randomBytes(64 * 4096 + 5);
    const { handle } = await open(bytes);
    const stream = readAhead(handle, bytes.length, { pieceBytes: 4096, depth: 3 });
    const seen = new Set<ArrayBufferLike>();
    const copies: Buffer[] = [];
    const held: { piece: Buffer; copy: Buffer }[] = [];
    let i = 0;
    for await (const chunk of stream) {
      const piece = chunk as Buffer;
      seen.add(piece.buffer);
      const copy = Buffer.from(piece);
      copies.push(copy);
      if (i++ % 7 === 0) held.push({ piece, copy });
      else {
        stream.recycle(piece);
        stream.recycle(piece); // a second hand-back is ignored
      }
      stream.recycle(Buffer.alloc(4096)); // so is a buffer it never gave out
    }
    expect(Buffer.concat(copies).equals(bytes)).toBe(true);
    for (const { piece, copy } of held) expect(piece.equals(copy)).toBe(true);
    // 65 pieces read through a handful of buffers.
    expect(seen.size).toBeLessThan(20);
  });

  it('closes the handle when the reader stops early', async () => {
    const { handle, size } = await open(randomBytes(64 * 4096));
    const stream = readAhead(handle, size, { pieceBytes: 4096, depth: 4 });
    for await (const _piece of stream) break;
    stream.on('error', () => {}); // breaking out of for-await destroys it with an AbortError
    if (!stream.closed) await new Promise((resolve) => stream.once('close', resolve));
    await expect(handle.stat()).rejects.toThrow();
  });

  it('starts no read once destroyed, even when a piece arrives afterwards', async () => {
    const { handle, size } = await open(randomBytes(64 * 4096));
    let destroyed = false;
    let readsAfterDestroy = 0;
    const counting = new Proxy(handle, {
      get(target, key) {
        const value = Reflect.get(target, key, target);
        if (key !== 'read') return typeof value === 'function' ? value.bind(target) : value;
        return (...args: unknown[]) => {
          if (destroyed) readsAfterDestroy++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const stream = readAhead(counting, size, { pieceBytes: 4096, depth: 3 });
    await new Promise((resolve) => stream.once('readable', resolve));
    expect(stream.read()).not.toBeNull();
    destroyed = true;
    stream.destroy();
    await new Promise((resolve) => stream.once('close', resolve));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(readsAfterDestroy).toBe(0);
    await expect(handle.stat()).rejects.toThrow();
  });

  it('fails, rather than ending short, when the file shrank while it was read', async () => {
    const { file, handle, size } = await open(randomBytes(16 * 4096));
    await fs.truncate(file, 5 * 4096 + 3);
    const read = async () => {
      for await (const _piece of readAhead(handle, size, { pieceBytes: 4096, depth: 2 })) {
        /* drain */
      }
    };
    await expect(read()).rejects.toThrow(/shrank while it was read/);
  });
});
