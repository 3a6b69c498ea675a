import { randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { describe, expect, it } from 'vitest';

/**
 * The native PKCS#12 KDF and PBKDF2 must give forge's own bytes for every input forge can be
 * handed, or a .pfx would open with one and not the other. forge's functions are taken before
 * the replacement is installed and compared over a grid of passwords, salts, ids, counts, lengths
 * and digests.
 */

const pki = forge.pki as unknown as { pbe: { generatePkcs12Key: (...a: unknown[]) => forge.util.ByteStringBuffer } };
const pkcs5 = forge.pkcs5 as unknown as { pbkdf2: (...a: unknown[]) => string };
const forgeKdf = pki.pbe.generatePkcs12Key;
const forgePbkdf2 = pkcs5.pbkdf2;
const { useNativeKdf } = await import('../../src/crypto/forge-native-kdf.js');
useNativeKdf();

const digests = ['sha1', 'sha256', 'sha384', 'sha512'] as const;
const passwords: (string | null)[] = ['', 'pw', 'correct horse battery staple', 'pässwörd', 'パスワード🔑', null];
const buffer = (b: Buffer) => forge.util.createBuffer(b.toString('binary'));

describe('native key derivation for node-forge', () => {
  it('is installed: forge now calls the native functions', () => {
    expect(pki.pbe.generatePkcs12Key).not.toBe(forgeKdf);
    expect((forge.pkcs12 as unknown as { generateKey: unknown }).generateKey).toBe(pki.pbe.generatePkcs12Key);
    expect(pkcs5.pbkdf2).not.toBe(forgePbkdf2);
  });

  it('derives the PKCS#12 KDF bytes forge derives', () => {
    let cases = 0;
    for (const digest of digests) {
      for (const password of passwords) {
        for (const saltLength of [0, 8, 16, 65, 130]) {
          const salt = randomBytes(saltLength);
          for (const [id, iterations, n] of [
            [1, 1, 20],
            [2, 2, 16],
            [3, 50, 64],
            [1, 7, 100],
          ] as const) {
            const mine = pki.pbe.generatePkcs12Key(password, buffer(salt), id, iterations, n, forge.md[digest].create()).bytes();
            const theirs = forgeKdf(password, buffer(salt), id, iterations, n, forge.md[digest].create()).bytes();
            expect(Buffer.from(mine, 'binary').toString('hex'), `${digest} ${password} ${saltLength} ${id} ${iterations} ${n}`).toBe(
              Buffer.from(theirs, 'binary').toString('hex'),
            );
            cases++;
          }
        }
      }
    }
    // forge's default digest (none given) is SHA-1.
    const salt = randomBytes(8);
    expect(pki.pbe.generatePkcs12Key('pw', buffer(salt), 3, 1000, 20).bytes()).toBe(forgeKdf('pw', buffer(salt), 3, 1000, 20).bytes());
    expect(cases).toBe(digests.length * passwords.length * 5 * 4);
  });

  it('derives the PBKDF2 bytes forge derives with a digest object, and leaves the other forms to forge', () => {
    for (const digest of digests) {
      for (const password of ['', 'pw', 'x'.repeat(200)]) {
        const salt = randomBytes(16).toString('binary');
        for (const [count, length] of [
          [1, 32],
          [1000, 32],
          [3, 100],
        ] as const) {
          expect(pkcs5.pbkdf2(password, salt, count, length, forge.md[digest].create())).toBe(
            forgePbkdf2(password, salt, count, length, forge.md[digest].create()),
          );
        }
      }
    }
    const salt = randomBytes(16).toString('binary');
    expect(pkcs5.pbkdf2('pw', salt, 10, 32, 'sha256')).toBe(forgePbkdf2('pw', salt, 10, 32, 'sha256'));
  });

  it("reads a password beyond ASCII as UTF-8, as OpenSSL does; forge's Latin-1 reading only when asked", async () => {
    const { pbkdf2Sync } = await import('node:crypto');
    const { withLatin1Pbes2 } = await import('../../src/crypto/forge-native-kdf.js');
    const salt = randomBytes(16);
    for (const password of ['pässwörd', 'パスワード']) {
      expect(pkcs5.pbkdf2(password, salt.toString('binary'), 10, 32, forge.md.sha256.create())).toBe(
        pbkdf2Sync(Buffer.from(password, 'utf8'), salt, 10, 32, 'sha256').toString('binary'),
      );
    }
    expect(withLatin1Pbes2(() => pkcs5.pbkdf2('pässwörd', salt.toString('binary'), 10, 32, forge.md.sha256.create()))).toBe(
      forgePbkdf2('pässwörd', salt.toString('binary'), 10, 32, forge.md.sha256.create()),
    );
  });

  it('refuses an iteration count below 1, as forge does', () => {
    expect(() => pki.pbe.generatePkcs12Key('pw', buffer(randomBytes(8)), 1, 0, 20)).toThrow(/iteration count must be >= 1/);
  });
});
