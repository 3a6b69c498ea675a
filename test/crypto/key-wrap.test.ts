import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  newDataKey,
  unwrapWithPrivateKey,
  unwrapWithSymmetricKey,
  wrapForCertificate,
  wrapForSymmetricKey,
} from '../../src/crypto/key-wrap.js';
import { generateSymmetricKey, parseSymmetricKey } from '../../src/crypto/symmetric-key.js';
import { thrown } from '../support/errors.js';

function rsaPair(bits = 2048): { publicKeyPem: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}

describe('data keys', () => {
  it('are 32 random bytes', () => {
    const a = newDataKey();
    expect(a).toHaveLength(32);
    expect(a.equals(newDataKey())).toBe(false);
  });
});

describe('wrapping for a certificate (RSA-OAEP SHA-256)', () => {
  const alice = rsaPair();
  const bob = rsaPair();

  it('unwraps with the matching private key only', () => {
    const dataKey = newDataKey();
    const wrapped = wrapForCertificate(dataKey, alice.publicKeyPem);
    expect(wrapped).toHaveLength(256);
    expect(unwrapWithPrivateKey(wrapped, alice.privateKeyPem).equals(dataKey)).toBe(true);
    const err = thrown(() => unwrapWithPrivateKey(wrapped, bob.privateKeyPem));
    expect(err.errorId).toBe('DataKeyUnwrapFailed');
    expect(err.category).toBe('SecurityError');
    expect(err.exitCode).toBe(12);
    expect(err.message).toMatch(/not encrypted for this certificate/);
  });

  it('is OAEP with SHA-256, so a SHA-1 OAEP decryptor cannot read it', async () => {
    const { privateDecrypt, constants } = await import('node:crypto');
    const wrapped = wrapForCertificate(newDataKey(), alice.publicKeyPem);
    expect(() =>
      privateDecrypt({ key: alice.privateKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, wrapped),
    ).toThrow();
  });

  it('detects a changed byte of the wrapped key', () => {
    const wrapped = wrapForCertificate(newDataKey(), alice.publicKeyPem);
    wrapped[100]! ^= 0x10;
    expect(thrown(() => unwrapWithPrivateKey(wrapped, alice.privateKeyPem)).errorId).toBe('DataKeyUnwrapFailed');
  });

  it('refuses a data key of the wrong size', () => {
    expect(thrown(() => wrapForCertificate(Buffer.alloc(16), alice.publicKeyPem)).errorId).toBe('InvalidDataKey');
  });
});

describe('wrapping for a symmetric key (AES-256 key wrap under HKDF)', () => {
  const key = parseSymmetricKey(generateSymmetricKey());

  it('round-trips and produces 40 bytes', () => {
    const dataKey = newDataKey();
    const wrapped = wrapForSymmetricKey(dataKey, key, 'backup-1');
    expect(wrapped).toHaveLength(40);
    expect(wrapped.includes(dataKey.subarray(0, 8))).toBe(false);
    expect(unwrapWithSymmetricKey(wrapped, key, 'backup-1').equals(dataKey)).toBe(true);
  });

  it('refuses another key, another context, and a changed byte with DataKeyUnwrapFailed, exit 12', () => {
    const wrapped = wrapForSymmetricKey(newDataKey(), key, 'backup-1');
    const tampered = Buffer.from(wrapped);
    tampered[39]! ^= 1;
    for (const err of [
      thrown(() => unwrapWithSymmetricKey(wrapped, parseSymmetricKey(generateSymmetricKey()), 'backup-1')),
      thrown(() => unwrapWithSymmetricKey(wrapped, key, 'backup-2')),
      thrown(() => unwrapWithSymmetricKey(tampered, key, 'backup-1')),
      thrown(() => unwrapWithSymmetricKey(wrapped.subarray(0, 32), key, 'backup-1')),
    ]) {
      expect(err.errorId).toBe('DataKeyUnwrapFailed');
      expect(err.category).toBe('SecurityError');
      expect(err.exitCode).toBe(12);
      expect(err.message).toMatch(/not encrypted for this key/);
    }
  });
});
