import { describe, expect, it } from 'vitest';
import { generateSymmetricKey, parseSymmetricKey, symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import { thrown } from '../support/errors.js';

describe('symmetric keys', () => {
  it('generates 88 characters of Base64 that decode to 64 bytes, different each time', () => {
    const a = generateSymmetricKey();
    const b = generateSymmetricKey();
    expect(a).toHaveLength(88);
    expect(Buffer.from(a, 'base64')).toHaveLength(64);
    expect(a).not.toBe(b);
    expect(parseSymmetricKey(a).equals(Buffer.from(a, 'base64'))).toBe(true);
  });

  it('forgives surrounding white space such as a trailing newline from stdin', () => {
    const k = generateSymmetricKey();
    expect(parseSymmetricKey(`  ${k}\r\n`).equals(Buffer.from(k, 'base64'))).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['too short', Buffer.alloc(32, 1).toString('base64')],
    ['too long', Buffer.alloc(65, 1).toString('base64')],
    ['not Base64', '!'.repeat(86) + '=='],
    ['Base64url alphabet', Buffer.alloc(64, 0xfb).toString('base64url') + '=='],
    ['hex of 64 bytes', Buffer.alloc(64, 7).toString('hex')],
  ])('refuses %s with InvalidEncryptionKey, exit 2, naming New-EncryptionKey', (_name, text) => {
    const err = thrown(() => parseSymmetricKey(text));
    expect(err.errorId).toBe('InvalidEncryptionKey');
    expect(err.category).toBe('InvalidArgument');
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(/88 characters of Base64/);
    expect(err.recommendedAction).toMatch(/New-EncryptionKey/);
  });

  it('never echoes the rejected text (it may be a near-miss of the real key)', () => {
    const almost = generateSymmetricKey().slice(0, 87);
    const err = thrown(() => parseSymmetricKey(almost));
    expect(err.message).not.toContain(almost.slice(0, 20));
  });

  it('gives a stable id that differs between keys and is not a plain hash of the key', async () => {
    const key = parseSymmetricKey(generateSymmetricKey());
    const other = parseSymmetricKey(generateSymmetricKey());
    const id = symmetricKeyId(key);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(symmetricKeyId(Buffer.from(key))).toBe(id);
    expect(symmetricKeyId(other)).not.toBe(id);
    const { createHash } = await import('node:crypto');
    for (const alg of ['sha256', 'sha1', 'md5']) {
      expect(createHash(alg).update(key).digest('hex')).not.toContain(id);
    }
  });
});
