import { constants, createCipheriv, createDecipheriv, hkdfSync, privateDecrypt, publicEncrypt, randomBytes } from 'node:crypto';
import { AzsError, ExitCode } from '../errors.js';

/**
 * Each backup is encrypted under its own random data key; only the data key is wrapped for the
 * recipients (a certificate's public key, or the operator's symmetric key). Rotating a recipient
 * therefore re-wraps 32 bytes instead of re-encrypting the backup.
 */
export const DATA_KEY_BYTES = 32;

/** RFC 3394's default initial value; unwrapping checks it, which is what detects a wrong key. */
const RFC3394_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

export function newDataKey(): Buffer {
  return randomBytes(DATA_KEY_BYTES);
}

function assertDataKey(dataKey: Buffer): void {
  if (!Buffer.isBuffer(dataKey) || dataKey.length !== DATA_KEY_BYTES) {
    throw new AzsError(`A data key must be ${DATA_KEY_BYTES} bytes.`, {
      errorId: 'InvalidDataKey',
      category: 'InvalidArgument',
      exitCode: ExitCode.Failure,
    });
  }
}

function unwrapFailed(recipient: string, action: string, cause: unknown): AzsError {
  return new AzsError(`The backup's data key could not be unwrapped: this backup was not encrypted for this ${recipient}.`, {
    errorId: 'DataKeyUnwrapFailed',
    category: 'SecurityError',
    exitCode: ExitCode.Integrity,
    recommendedAction: action,
    cause,
  });
}

/** RSA-OAEP with SHA-256 (and MGF1-SHA-256): the backup host needs only the public certificate. */
export function wrapForCertificate(dataKey: Buffer, publicKeyPem: string): Buffer {
  assertDataKey(dataKey);
  try {
    return publicEncrypt({ key: publicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, dataKey);
  } catch (cause) {
    throw new AzsError("The encryption certificate's public key cannot encrypt the data key (is it an RSA key?).", {
      errorId: 'UnsupportedCertificateKey',
      category: 'InvalidArgument',
      exitCode: ExitCode.Usage,
      recommendedAction: 'Use an RSA certificate (3072 bits or more), e.g. one made by New-EncryptionKey -Certificate.',
      cause,
    });
  }
}

export function unwrapWithPrivateKey(wrapped: Buffer, privateKeyPem: string): Buffer {
  let dataKey: Buffer;
  try {
    dataKey = privateDecrypt({ key: privateKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrapped);
  } catch (cause) {
    throw unwrapFailed(
      'certificate',
      'Use the .pfx of the certificate whose thumbprint the backup records (Get-InfrastructureBackup shows EncryptionCertThumbprint).',
      cause,
    );
  }
  if (dataKey.length !== DATA_KEY_BYTES) {
    throw unwrapFailed('certificate', 'Use the .pfx of the certificate whose thumbprint the backup records.', undefined);
  }
  return dataKey;
}

/**
 * The wrapping key is derived rather than the operator's key used directly, so the same key can
 * also seal other things without two uses ever sharing a key, and the context (e.g. the backup
 * name) makes a wrapped key copied into another backup fail to unwrap.
 */
function symmetricWrappingKey(key: Buffer, context: string): Buffer {
  if (!Buffer.isBuffer(key) || key.length < 32) {
    throw new AzsError('A symmetric key must be at least 32 bytes.', {
      errorId: 'InvalidEncryptionKey',
      category: 'InvalidArgument',
      exitCode: ExitCode.Usage,
      recommendedAction: 'Make a key with New-EncryptionKey.',
    });
  }
  const info = Buffer.concat([Buffer.from('AzsBackup data key wrap v1\0', 'utf8'), Buffer.from(context, 'utf8')]);
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), info, 32));
}

/** AES-256 key wrap (RFC 3394): 32 bytes in, 40 bytes out. */
export function wrapForSymmetricKey(dataKey: Buffer, key: Buffer, context: string): Buffer {
  assertDataKey(dataKey);
  const cipher = createCipheriv('id-aes256-wrap', symmetricWrappingKey(key, context), RFC3394_IV);
  return Buffer.concat([cipher.update(dataKey), cipher.final()]);
}

export function unwrapWithSymmetricKey(wrapped: Buffer, key: Buffer, context: string): Buffer {
  const wrappingKey = symmetricWrappingKey(key, context);
  let dataKey: Buffer;
  try {
    const decipher = createDecipheriv('id-aes256-wrap', wrappingKey, RFC3394_IV);
    dataKey = Buffer.concat([decipher.update(wrapped), decipher.final()]);
  } catch (cause) {
    throw unwrapFailed(
      'key',
      'Use the encryption key whose key id the backup records (Get-InfrastructureBackup shows EncryptionKeyId).',
      cause,
    );
  }
  if (dataKey.length !== DATA_KEY_BYTES) {
    throw unwrapFailed('key', 'Use the encryption key whose key id the backup records.', undefined);
  }
  return dataKey;
}
