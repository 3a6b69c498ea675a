import { describe, expect, it } from 'vitest';
import { BLOB_OVERHEAD, BlobSealer, openBlob } from '../../src/repository/blob.js';
import { chunkIdOf, deriveRepositoryKeys } from '../../src/repository/keys.js';
import { thrown } from '../support/errors.js';
import { pseudoRandomBytes } from '../support/pseudo-random.js';

const keys = deriveRepositoryKeys(Buffer.alloc(32, 9));
const sealer = new BlobSealer(keys);
const seal = (id: Buffer, plaintext: Buffer) => Buffer.concat(sealer.seal(id, plaintext));

describe('blobs', () => {
  it.each([
    ['text, which compresses', Buffer.from('{"record":1}\n'.repeat(50_000))],
    ['random bytes, stored as they are', pseudoRandomBytes('blob', 300_000)],
    ['an empty chunk', Buffer.alloc(0)],
  ])('open to the chunk they were sealed as: %s', (_kind, plaintext) => {
    const id = chunkIdOf(keys, plaintext);
    const blob = seal(id, plaintext);
    expect(blob.length).toBeLessThanOrEqual(plaintext.length + BLOB_OVERHEAD);
    expect(openBlob(keys, id, blob, 'p', plaintext.length).equals(plaintext)).toBe(true);
  });

  it('differ each time the same chunk is sealed (random nonces), and both open', () => {
    const plaintext = Buffer.from('same chunk');
    const id = chunkIdOf(keys, plaintext);
    const [a, b] = [seal(id, plaintext), seal(id, plaintext)];
    expect(a.equals(b)).toBe(false);
    expect(openBlob(keys, id, b, 'p').equals(plaintext)).toBe(true);
  });

  it('are refused under another repository key, as another chunk, or with another length', () => {
    const plaintext = pseudoRandomBytes('refused', 10_000);
    const id = chunkIdOf(keys, plaintext);
    const blob = seal(id, plaintext);
    const other = deriveRepositoryKeys(Buffer.alloc(32, 10));
    expect(thrown(() => openBlob(other, id, blob, 'p')).errorId).toBe('ChunkNotAuthentic');
    expect(thrown(() => openBlob(keys, chunkIdOf(keys, Buffer.from('x')), blob, 'p')).errorId).toBe('ChunkNotAuthentic');
    expect(thrown(() => openBlob(keys, id, blob, 'p', 9_999)).errorId).toBe('ChunkNotAuthentic');
    expect(thrown(() => openBlob(keys, id, blob.subarray(0, 20), 'p')).errorId).toBe('ChunkNotAuthentic');
  });

  it('whose contents do not hash to their id (a writer that mixed chunks up) are refused though they authenticate', () => {
    const id = chunkIdOf(keys, Buffer.from('what the id says'));
    const err = thrown(() => openBlob(keys, id, seal(id, Buffer.from('what was sealed')), 'p'));
    expect(err.errorId).toBe('ChunkNotAuthentic');
    expect(err.message).toMatch(/do not hash to its id/);
  });
});
