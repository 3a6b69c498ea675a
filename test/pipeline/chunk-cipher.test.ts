import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { describeWithAndWithoutAddons, setNativeAddons } from '../support/native-switch.js';
import { AzsError } from '../../src/errors.js';
import {
  CHUNK_HEADER_BYTES,
  CHUNK_TAG_BYTES,
  createDecryptStream,
  createEncryptStream,
  encryptedSize,
  type ChunkCipherOptions,
} from '../../src/pipeline/chunk-cipher.js';

const CHUNK = 4096;
const RECORD = CHUNK + CHUNK_TAG_BYTES;

function options(over: Partial<ChunkCipherOptions> = {}): ChunkCipherOptions {
  return {
    dataKey: KEY,
    backupName: '6f1c0b9e-1111-4c2e-9a51-0d3c0a6b7e01',
    roleName: 'Identity',
    fileName: 'Identity.azsbak',
    chunkSize: CHUNK,
    ...over,
  };
}
const KEY = randomBytes(32);

/** Feeds `data` in slices of the given sizes (cycled), to exercise arbitrary write boundaries. */
function slicesOf(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

async function run(transform: NodeJS.ReadWriteStream, input: Buffer[]): Promise<{ output: Buffer; error?: AzsError }> {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  try {
    await pipeline(Readable.from(input, { objectMode: false }), transform, sink);
    return { output: Buffer.concat(parts) };
  } catch (e) {
    if (!(e instanceof AzsError)) throw e;
    return { output: Buffer.concat(parts), error: e };
  }
}

async function encrypt(data: Buffer, opts = options(), sizes = [65536]): Promise<Buffer> {
  const { output, error } = await run(createEncryptStream(opts), slicesOf(data, sizes));
  if (error) throw error;
  return output;
}

async function decrypt(file: Buffer, opts = options(), sizes = [65536]): Promise<{ output: Buffer; error?: AzsError }> {
  return run(createDecryptStream(opts), slicesOf(file, sizes));
}

function chunkAt(file: Buffer, i: number, length = RECORD): Buffer {
  const start = CHUNK_HEADER_BYTES + i * RECORD;
  return file.subarray(start, start + length);
}

function expectIntegrity(error: AzsError | undefined, errorId: string, chunk?: number): void {
  expect(error, `expected ${errorId}`).toBeInstanceOf(AzsError);
  expect(error!.errorId).toBe(errorId);
  expect(error!.category).toBe('InvalidData');
  expect(error!.exitCode).toBe(12);
  expect(error!.message).toContain('Identity.azsbak');
  if (chunk !== undefined) expect((error!.targetObject as { Chunk: number }).Chunk).toBe(chunk);
}

// Both ways of decrypting (our addon into recycled memory, Node's Decipher) must accept and refuse alike.
describeWithAndWithoutAddons('chunk cipher', () => {
  describe('chunk cipher round trips', () => {
    it.each([
      ['empty', 0],
      ['1 byte', 1],
      ['one chunk less a byte', CHUNK - 1],
      ['exactly one chunk', CHUNK],
      ['one chunk and a byte', CHUNK + 1],
      ['exactly three chunks', 3 * CHUNK],
      ['many chunks', 37 * CHUNK + 123],
    ])('%s', async (_name, size) => {
      const data = randomBytes(size);
      const file = await encrypt(data);
      expect(file.length).toBe(encryptedSize(size, CHUNK));
      expect(file.subarray(0, 8).toString('ascii')).toBe('AZSCHUNK');
      const { output, error } = await decrypt(file);
      expect(error).toBeUndefined();
      expect(output.equals(data)).toBe(true);
    });

    it('does not depend on how the input and the file are sliced', async () => {
      const data = randomBytes(9 * CHUNK + 77);
      const reference = await encrypt(data);
      for (const sizes of [[1], [7, 4099, 13], [CHUNK], [CHUNK + 16], [RECORD, 1], [100_000]]) {
        const file = await encrypt(data, options(), sizes);
        expect(file.length).toBe(reference.length);
        const back = await decrypt(file, options(), sizes);
        expect(back.error).toBeUndefined();
        expect(back.output.equals(data)).toBe(true);
      }
    });

    it('encrypts the same data differently each time (fresh salt) and hides the plaintext', async () => {
      const data = Buffer.alloc(3 * CHUNK, 'a');
      const a = await encrypt(data);
      const b = await encrypt(data);
      expect(a.equals(b)).toBe(false);
      expect(a.includes(Buffer.alloc(64, 'a'))).toBe(false);
    });

    it('uses the default 1 MiB chunk size and refuses silly ones', async () => {
      const file = await encrypt(randomBytes(10), options({ chunkSize: undefined }));
      expect(file.readUInt32BE(12)).toBe(1024 * 1024);
      expect(() => createEncryptStream(options({ chunkSize: 100 }))).toThrow(/chunk size/);
      expect(() => createEncryptStream(options({ dataKey: Buffer.alloc(16) }))).toThrow(/32 bytes/);
    });
  });

  describe('chunk cipher tamper detection', () => {
    const data = randomBytes(5 * CHUNK + 1000); // chunks 0..4 full, chunk 5 last (1000 bytes)
    let file: Buffer;
    const ready = encrypt(data).then((f) => (file = f));

    it('rejects one changed byte anywhere: every header byte and sampled body bytes', async () => {
      await ready;
      const positions = [...Array(CHUNK_HEADER_BYTES).keys()];
      for (let p = CHUNK_HEADER_BYTES; p < file.length; p += 997) positions.push(p);
      positions.push(file.length - 1, file.length - CHUNK_TAG_BYTES, CHUNK_HEADER_BYTES + RECORD - 1);
      for (const p of positions) {
        const bad = Buffer.from(file);
        bad[p]! ^= 0x01;
        const { error } = await decrypt(bad);
        expect(error, `byte ${p}`).toBeInstanceOf(AzsError);
        expect(error!.exitCode, `byte ${p}`).toBe(12);
        expect(['ChunkAuthenticationFailed', 'NotAnEncryptedBackupFile', 'UnsupportedBackupFileFormat', 'TruncatedBackupFile']).toContain(
          error!.errorId,
        );
        if (p >= CHUNK_HEADER_BYTES) expectIntegrity(error, 'ChunkAuthenticationFailed', Math.floor((p - CHUNK_HEADER_BYTES) / RECORD));
      }
    });

    it('names the header problems precisely', async () => {
      await ready;
      const magic = Buffer.from(file);
      magic[0] = 0x58;
      expectIntegrity((await decrypt(magic)).error, 'NotAnEncryptedBackupFile');
      const version = Buffer.from(file);
      version[8] = 2;
      expectIntegrity((await decrypt(version)).error, 'UnsupportedBackupFileFormat');
      const salt = Buffer.from(file);
      salt[30]! ^= 0x80;
      expectIntegrity((await decrypt(salt)).error, 'ChunkAuthenticationFailed', 0);
    });

    it('releases nothing of a chunk that fails: output stops at the last good chunk', async () => {
      await ready;
      const bad = Buffer.from(file);
      bad[CHUNK_HEADER_BYTES + 2 * RECORD + 10]! ^= 0x01;
      const { output, error } = await decrypt(bad, options(), [1, 333, RECORD]);
      expectIntegrity(error, 'ChunkAuthenticationFailed', 2);
      expect(output.length).toBeLessThanOrEqual(2 * CHUNK);
      expect(output.equals(data.subarray(0, output.length))).toBe(true);
    });

    it('rejects truncation at a chunk boundary, inside a chunk, inside the header, and to the header alone', async () => {
      await ready;
      const atBoundary = file.subarray(0, CHUNK_HEADER_BYTES + 5 * RECORD); // the last chunk is gone
      expectIntegrity((await decrypt(atBoundary)).error, 'TruncatedBackupFile', 4);
      const earlierBoundary = file.subarray(0, CHUNK_HEADER_BYTES + 2 * RECORD);
      expectIntegrity((await decrypt(earlierBoundary)).error, 'TruncatedBackupFile', 1);
      expectIntegrity((await decrypt(file.subarray(0, file.length - 1))).error, 'ChunkAuthenticationFailed', 5);
      expectIntegrity((await decrypt(file.subarray(0, CHUNK_HEADER_BYTES + 3 * RECORD + 100))).error, 'ChunkAuthenticationFailed', 3);
      expectIntegrity((await decrypt(file.subarray(0, CHUNK_HEADER_BYTES))).error, 'TruncatedBackupFile', 0);
      expectIntegrity((await decrypt(file.subarray(0, CHUNK_HEADER_BYTES + 5))).error, 'TruncatedBackupFile', 0);
      expectIntegrity((await decrypt(file.subarray(0, 20))).error, 'TruncatedBackupFile');
      expectIntegrity((await decrypt(Buffer.alloc(0))).error, 'TruncatedBackupFile');
    });

    it('rejects two chunks swapped, a chunk dropped, a chunk duplicated, and anything after the last chunk', async () => {
      await ready;
      const header = file.subarray(0, CHUNK_HEADER_BYTES);
      const last = file.subarray(CHUNK_HEADER_BYTES + 5 * RECORD);
      const c = (i: number) => chunkAt(file, i);
      const swapped = Buffer.concat([header, c(0), c(2), c(1), c(3), c(4), last]);
      expectIntegrity((await decrypt(swapped)).error, 'ChunkAuthenticationFailed', 1);
      const dropped = Buffer.concat([header, c(0), c(1), c(3), c(4), last]);
      expectIntegrity((await decrypt(dropped)).error, 'ChunkAuthenticationFailed', 2);
      const duplicated = Buffer.concat([header, c(0), c(0), c(1), c(2), c(3), c(4), last]);
      expectIntegrity((await decrypt(duplicated)).error, 'ChunkAuthenticationFailed', 1);
      expectIntegrity((await decrypt(Buffer.concat([file, Buffer.from([0])]))).error, 'ChunkAuthenticationFailed', 5);
      expectIntegrity((await decrypt(Buffer.concat([file, file]))).error, 'ChunkAuthenticationFailed');
      // The short last chunk moved to the front, and a middle chunk presented as last.
      expectIntegrity((await decrypt(Buffer.concat([header, last]))).error, 'ChunkAuthenticationFailed', 0);
    });

    it('rejects a file spliced from another backup, role or file name, and a wrong data key', async () => {
      await ready;
      for (const other of [
        options({ backupName: 'a0000000-0000-0000-0000-000000000000' }),
        options({ roleName: 'CA' }),
        options({ fileName: 'CA.azsbak' }),
        options({ dataKey: randomBytes(32) }),
      ]) {
        const { output, error } = await decrypt(file, other);
        expect(error?.errorId).toBe('ChunkAuthenticationFailed');
        expect(error?.exitCode).toBe(12);
        expect(output.length).toBe(0);
      }
      // Name fields are length-prefixed: moving a character between names changes the key.
      const shifted = await encrypt(data, options({ backupName: 'ab', roleName: 'c' }));
      expect((await decrypt(shifted, options({ backupName: 'a', roleName: 'bc' }))).error?.errorId).toBe('ChunkAuthenticationFailed');
    });

    it('rejects a chunk taken from the same position of another file with the same key and names', async () => {
      await ready;
      const other = await encrypt(data);
      const mixed = Buffer.concat([
        file.subarray(0, CHUNK_HEADER_BYTES + RECORD),
        chunkAt(other, 1),
        file.subarray(CHUNK_HEADER_BYTES + 2 * RECORD),
      ]);
      expectIntegrity((await decrypt(mixed)).error, 'ChunkAuthenticationFailed', 1);
      expect(createHash('sha256').update(mixed).digest('hex')).not.toBe(createHash('sha256').update(file).digest('hex'));
    });
  });
});

describe('the addon and Node write the same format', () => {
  const data = randomBytes(CHUNK * 5 + 123);
  const sealedBy = async (native: boolean, opts = options()): Promise<Buffer> => {
    const restore = setNativeAddons(native);
    try {
      return await encrypt(data, opts, [1000, 4096, 77]);
    } finally {
      restore();
    }
  };
  const openedBy = async (native: boolean, file: Buffer, opts = options()): Promise<Buffer> => {
    const restore = setNativeAddons(native);
    try {
      const { output, error } = await decrypt(file, opts, [333, 8192]);
      if (error) throw error;
      return output;
    } finally {
      restore();
    }
  };

  it.each([
    { sealer: 'addon', opener: "Node's Decipher", native: [true, false] },
    { sealer: "Node's Cipher", opener: 'the addon', native: [false, true] },
  ])('sealed by $sealer, opened by $opener', async ({ native }) => {
    const opts = options();
    const file = await sealedBy(native[0]!, opts);
    expect((await openedBy(native[1]!, file, opts)).equals(data)).toBe(true);
  });
});
