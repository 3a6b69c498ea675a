import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { AzsError, ExitCode } from '../errors.js';

/**
 * Seals short secrets (the share password, a symmetric key) for storage in the configuration file.
 * Format: `v1.<base64url nonce>.<base64url ciphertext||tag>`, AES-256-GCM under a key derived from
 * the sealing key, with the context (e.g. the setting's name) as associated data so a sealed value
 * moved to another setting does not open.
 */
const VERSION = 'v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

function boxKey(key: Buffer): Buffer {
  if (!Buffer.isBuffer(key) || key.length < 32) {
    throw new AzsError('The key that seals configuration secrets must be at least 32 bytes.', {
      errorId: 'InvalidSealingKey',
      category: 'InvalidArgument',
      exitCode: ExitCode.Failure,
    });
  }
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'AzsBackup secret box v1', 32));
}

export function sealSecret(plaintext: string, key: Buffer, context: string): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', boxKey(key), nonce);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return `${VERSION}.${nonce.toString('base64url')}.${sealed.toString('base64url')}`;
}

function cannotOpen(context: string, why: string, cause?: unknown): AzsError {
  return new AzsError(`The stored secret '${context}' cannot be opened: ${why}.`, {
    errorId: 'SealedSecretInvalid',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    targetObject: context,
    recommendedAction: 'Set the secret again (e.g. Set-BackupShare with the credential or key), or reset with Clear-BackupConfiguration.',
    cause,
  });
}

export function openSecret(sealed: string, key: Buffer, context: string): string {
  const parts = typeof sealed === 'string' ? sealed.split('.') : [];
  if (parts.length !== 3 || parts[0] !== VERSION) {
    throw cannotOpen(context, 'it is not a sealed value of a known format');
  }
  const nonce = Buffer.from(parts[1]!, 'base64url');
  const body = Buffer.from(parts[2]!, 'base64url');
  if (nonce.length !== NONCE_BYTES || body.length < TAG_BYTES) {
    throw cannotOpen(context, 'it is not a sealed value of a known format');
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', boxKey(key), nonce);
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    const plain = Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
    return plain.toString('utf8');
  } catch (cause) {
    throw cannotOpen(context, 'it was changed, or sealed with another key', cause);
  }
}
