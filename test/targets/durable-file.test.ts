import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { DurableFileWriter } from '../../src/targets/durable-file.js';

const dir = mkdtempSync(path.join(tmpdir(), 'azs-durable-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

async function fileHandlePrototype(): Promise<object> {
  const h = await fsp.open(__filename, 'r');
  await h.close();
  return Object.getPrototypeOf(h) as object;
}

const openFds = () => readdirSync('/proc/self/fd').length;

describe('DurableFileWriter', () => {
  it('writes every byte, flushes in the background along the way and fsyncs before it finishes', async () => {
    const proto = await fileHandlePrototype();
    const datasync = vi.spyOn(proto as { datasync(): Promise<void> }, 'datasync');
    const sync = vi.spyOn(proto as { sync(): Promise<void> }, 'sync');
    const pieces = Array.from({ length: 40 }, () => randomBytes(64 * 1024));
    const file = path.join(dir, 'big');
    const writer = new DurableFileWriter(file, 256 * 1024);
    await pipeline(Readable.from(pieces), writer);
    expect(readFileSync(file).equals(Buffer.concat(pieces))).toBe(true);
    expect(writer.bytes).toBe(40 * 64 * 1024);
    // One flush at a time: a new one starts only after the last finished, however fast the writes.
    expect(datasync).toHaveBeenCalled();
    expect(sync).toHaveBeenCalledTimes(1);
    expect(datasync.mock.invocationCallOrder[0]).toBeLessThan(sync.mock.invocationCallOrder[0]!);
  });

  it('refuses to replace an existing file and leaves it as it was', async () => {
    const file = path.join(dir, 'existing');
    writeFileSync(file, 'keep me');
    const err = await pipeline(Readable.from([Buffer.from('other')]), new DurableFileWriter(file)).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });

  it('closes its file when the source fails half-way', async () => {
    const before = openFds();
    let pushed = 0;
    const source = new Readable({
      read() {
        if (++pushed > 3) this.destroy(new Error('the provider died'));
        else this.push(randomBytes(1024 * 1024));
      },
    });
    const err = await pipeline(source, new DurableFileWriter(path.join(dir, 'cut'), 512 * 1024)).catch((e: unknown) => e);
    expect((err as Error).message).toBe('the provider died');
    await new Promise((r) => setTimeout(r, 50));
    expect(openFds()).toBe(before);
  });
});
