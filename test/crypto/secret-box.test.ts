import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { openSecret, sealSecret } from '../../src/crypto/secret-box.js';

function openError(sealed: string, key: Buffer, context: string): AzsError {
  try {
    openSecret(sealed, key, context);
  } catch (e) {
    if (e instanceof AzsError) return e;
    throw e;
  }
  throw new Error('expected openSecret to fail');
}

describe('secret box', () => {
  const key = randomBytes(32);

  it('round-trips text, including empty and non-ASCII, in the v1 compact form', () => {
    for (const text of ['', 'P@ssw0rd!', 'пароль 🔑'.repeat(50)]) {
      const sealed = sealSecret(text, key, 'share.password');
      expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
      expect(sealed).not.toContain(text || '\u0000');
      expect(openSecret(sealed, key, 'share.password')).toBe(text);
    }
  });

  it('uses a fresh nonce each time', () => {
    expect(sealSecret('same', key, 'c')).not.toBe(sealSecret('same', key, 'c'));
  });

  it('refuses a changed byte, another context and another key with SealedSecretInvalid, exit 12', () => {
    const sealed = sealSecret('secret value', key, 'share.password');
    const body = Buffer.from(sealed.split('.')[2]!, 'base64url');
    body[0]! ^= 1;
    const tampered = `v1.${sealed.split('.')[1]}.${body.toString('base64url')}`;
    for (const err of [
      openError(tampered, key, 'share.password'),
      openError(sealed, key, 'encryption.key'),
      openError(sealed, randomBytes(32), 'share.password'),
      openError('v2' + sealed.slice(2), key, 'share.password'),
      openError('not sealed', key, 'share.password'),
      openError(sealed.slice(0, 20), key, 'share.password'),
    ]) {
      expect(err.errorId).toBe('SealedSecretInvalid');
      expect(err.category).toBe('InvalidData');
      expect(err.exitCode).toBe(12);
      expect(err.recommendedAction).toBeTruthy();
    }
  });
});
