import { describe, expect, it } from 'vitest';
import { BLOB_OVERHEAD, BlobSealer, openBlob, openBlobInto } from '../../src/repository/blob.js';
import { chunkIdOf, deriveRepositoryKeys } from '../../src/repository/keys.js';
import { thrown } from '../support/errors.js';
import { pseudoRandomBytes } from '../support/pseudo-random.js';

const keys = deriveRepositoryKeys(Buffer.alloc(32, 9));
const place = { pack: 'p', blobKey: Buffer.alloc(32, 7) };
const sealer = new BlobSealer();
const seal = (id: Buffer, plaintext: Buffer, blobKey = place.blobKey) => Buffer.concat(sealer.seal(blobKey, id, sealer.pack(plaintext)));

describe('blobs', () => {
  it.each([
    ['text, which compresses', Buffer.from('{"record":1}\n'.repeat(50_000))],
    ['random bytes, stored as they are', pseudoRandomBytes('blob', 300_000)],
    ['an empty chunk', Buffer.alloc(0)],
  ])('open to the chunk they were sealed as: %s', (_kind, plaintext) => {
    const id = chunkIdOf(keys, plaintext);
    const blob = seal(id, plaintext);
    expect(blob.length).toBeLessThanOrEqual(plaintext.length + BLOB_OVERHEAD);
    expect(openBlob(keys, place, id, blob, plaintext.length).equals(plaintext)).toBe(true);
  });

  it('differ each time the same chunk is sealed (random nonces), and both open', () => {
    const plaintext = Buffer.from('same chunk');
    const id = chunkIdOf(keys, plaintext);
    const [a, b] = [seal(id, plaintext), seal(id, plaintext)];
    expect(a.equals(b)).toBe(false);
    expect(openBlob(keys, place, id, b).equals(plaintext)).toBe(true);
  });

  it('are refused under another pack key or repository, as another chunk, or with another length', () => {
    const plaintext = pseudoRandomBytes('refused', 10_000);
    const id = chunkIdOf(keys, plaintext);
    const blob = seal(id, plaintext);
    const other = deriveRepositoryKeys(Buffer.alloc(32, 10));
    expect(thrown(() => openBlob(keys, { pack: 'p', blobKey: Buffer.alloc(32, 8) }, id, blob)).errorId).toBe('ChunkNotAuthentic');
    // Someone holding only the public key can seal a pack, but not name a chunk by its keyed hash.
    const forgedId = chunkIdOf(other, Buffer.from("the attacker's data"));
    expect(thrown(() => openBlob(keys, place, forgedId, seal(forgedId, Buffer.from("the attacker's data")))).message).toMatch(
      /do not hash to its id/,
    );
    expect(thrown(() => openBlob(other, place, id, blob)).errorId).toBe('ChunkNotAuthentic');
    expect(thrown(() => openBlob(keys, place, chunkIdOf(keys, Buffer.from('x')), blob)).errorId).toBe('ChunkNotAuthentic');
    expect(thrown(() => openBlob(keys, place, id, blob, 9_999)).errorId).toBe('ChunkNotAuthentic');
    expect(thrown(() => openBlob(keys, place, id, blob.subarray(0, 20))).errorId).toBe('ChunkNotAuthentic');
  });

  it('whose contents do not hash to their id (a writer that mixed chunks up) are refused though they authenticate', () => {
    const id = chunkIdOf(keys, Buffer.from('what the id says'));
    const err = thrown(() => openBlob(keys, place, id, seal(id, Buffer.from('what was sealed'))));
    expect(err.errorId).toBe('ChunkNotAuthentic');
    expect(err.message).toMatch(/do not hash to its id/);
  });

  it("whose frame declares another size than expected are refused before the frame is expanded (a bomb sealed with a forger's pack key)", () => {
    // 60 MiB of zeros compress to a few KB: a forger holding only the public key can seal that.
    const bomb = Buffer.alloc(60 << 20);
    const id = chunkIdOf(keys, Buffer.from('what the catalog names'));
    const err = thrown(() => openBlob(keys, place, id, seal(id, bomb), 1_000));
    expect(err.errorId).toBe('ChunkNotAuthentic');
    expect(err.message).toMatch(/declares 62914560 bytes, not 1000/);
  });

  it('open into given memory to the same chunk, with the same refusals, for both codecs', () => {
    for (const plaintext of [Buffer.from('{"record":1}\n'.repeat(20_000)), pseudoRandomBytes('into', 100_000)]) {
      const id = chunkIdOf(keys, plaintext);
      const blob = seal(id, plaintext);
      const out = Buffer.alloc(plaintext.length + 10, 0xee);
      // A copy: the blob given is used up (decrypted where it lies).
      openBlobInto(keys, place, id, Buffer.from(blob), out.subarray(5, 5 + plaintext.length));
      expect(out.subarray(5, 5 + plaintext.length).equals(plaintext)).toBe(true);
      // Nothing around the place given is touched.
      expect([...out.subarray(0, 5), ...out.subarray(5 + plaintext.length)].every((b) => b === 0xee)).toBe(true);
      const forged = Buffer.from(blob);
      forged[forged.length >> 1]! ^= 1;
      const cases: [Buffer, Buffer, number][] = [
        [forged, id, plaintext.length],
        [blob, id, plaintext.length - 1],
        [blob, chunkIdOf(keys, Buffer.from('another')), plaintext.length],
      ];
      for (const [b, chunkId, length] of cases) {
        const into = thrown(() => openBlobInto(keys, place, chunkId, Buffer.from(b), Buffer.alloc(length)));
        expect(into.errorId).toBe('ChunkNotAuthentic');
        expect(into.message).toBe(thrown(() => openBlob(keys, place, chunkId, b, length)).message);
      }
    }
  });
});
