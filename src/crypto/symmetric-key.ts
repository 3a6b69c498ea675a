import { hkdfSync, randomBytes } from 'node:crypto';
import { AzsError, ExitCode } from '../errors.js';

/** A symmetric encryption key is 64 random bytes; in Base64 that is 86 characters and `==`. */
export const SYMMETRIC_KEY_BYTES = 64;

const KEY_TEXT = /^[A-Za-z0-9+/]{86}==$/;

export function generateSymmetricKey(): string {
  return randomBytes(SYMMETRIC_KEY_BYTES).toString('base64');
}

/**
 * Turns the operator's key text into key bytes. Surrounding white space is forgiven because keys
 * arrive from files, standard input and environment variables with trailing newlines. The key is
 * never echoed back in the message: it is the secret that decrypts every backup.
 */
export function parseSymmetricKey(text: string): Buffer {
  const trimmed = typeof text === 'string' ? text.trim() : '';
  if (!KEY_TEXT.test(trimmed)) {
    throw new AzsError(
      `The encryption key is not valid: a key is 88 characters of Base64 that encode ${SYMMETRIC_KEY_BYTES} random bytes ` +
        `(the text given has ${trimmed.length} characters after trimming white space).`,
      {
        errorId: 'InvalidEncryptionKey',
        category: 'InvalidArgument',
        exitCode: ExitCode.Usage,
        // The parameter, never the text: that may be the key itself.
        targetObject: 'EncryptionKey',
        recommendedAction:
          'Make a key with New-EncryptionKey (it prints or writes an 88-character Base64 key), keep it somewhere safe, and pass that key.',
      },
    );
  }
  const key = Buffer.from(trimmed, 'base64');
  // The regex already pins the length; this guards against a future change to it.
  if (key.length !== SYMMETRIC_KEY_BYTES) {
    throw new AzsError('The encryption key does not decode to 64 bytes.', {
      errorId: 'InvalidEncryptionKey',
      category: 'InvalidArgument',
      exitCode: ExitCode.Usage,
      targetObject: 'EncryptionKey',
      recommendedAction: 'Make a key with New-EncryptionKey and pass it unchanged.',
    });
  }
  return key;
}

/**
 * A name for the key that can be shown, stored in BackupInfo.xml and compared, without revealing the
 * key. It is HKDF output under its own purpose label, so it is unrelated to any key the key derives
 * for encryption, and unlike a plain hash it cannot be used to test guesses of other derived values.
 */
export function symmetricKeyId(key: Buffer): string {
  const id = hkdfSync('sha256', key, Buffer.alloc(0), 'AzsBackup key id v1', 16);
  return Buffer.from(id).toString('hex');
}
