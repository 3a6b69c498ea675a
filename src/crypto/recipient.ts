import { AzsError, ExitCode } from '../errors.js';
import { unwrapWithPrivateKey, unwrapWithSymmetricKey, wrapForCertificate, wrapForSymmetricKey } from './key-wrap.js';

/**
 * Who can open a backup. A backup's data key is wrapped once per recipient; the wrapped keys are
 * recorded in BackupInfo.xml with the recipient's id (certificate thumbprint or key id).
 */

export type EncryptFor =
  /**
   * `authenticationKey`: from the secret only the certificate's private key yields
   * (certificate-authentication.ts); without it, the backups made cannot prove who made them.
   */
  | { kind: 'Certificate'; thumbprint: string; publicKeyPem: string; authenticationKey?: Buffer }
  | { kind: 'Key'; keyId: string; key: Buffer };

export type DecryptWith =
  | { kind: 'Certificate'; thumbprint: string; privateKeyPem: string; authenticationKey: Buffer }
  | { kind: 'Key'; keyId: string; key: Buffer };

export interface WrappedKey {
  kind: 'Certificate' | 'Key';
  /** Thumbprint or key id. */
  id: string;
  algorithm: 'RSA-OAEP-SHA256' | 'AES256-KW-HKDF-SHA256';
  value: Buffer;
}

export function wrapFor(recipient: EncryptFor, dataKey: Buffer, backupName: string): WrappedKey {
  return recipient.kind === 'Certificate'
    ? {
        kind: 'Certificate',
        id: recipient.thumbprint,
        algorithm: 'RSA-OAEP-SHA256',
        value: wrapForCertificate(dataKey, recipient.publicKeyPem),
      }
    : {
        kind: 'Key',
        id: recipient.keyId,
        algorithm: 'AES256-KW-HKDF-SHA256',
        value: wrapForSymmetricKey(dataKey, recipient.key, backupName),
      };
}

/** The id a backup records the recipient under: the certificate's thumbprint or the key id. */
export function recipientId(recipient: EncryptFor): string {
  return recipient.kind === 'Certificate' ? recipient.thumbprint : recipient.keyId;
}

/** "certificate <thumbprint>" or "key <key id>", for messages. */
export function recipientLabel(recipient: EncryptFor): string {
  return recipient.kind === 'Certificate' ? `certificate ${recipient.thumbprint}` : `key ${recipient.keyId}`;
}

export function materialId(material: DecryptWith): string {
  return material.kind === 'Certificate' ? material.thumbprint : material.keyId;
}

/** Finds the wrapped key meant for this material and unwraps it; exit 12 when there is none or it fails. */
/** The key wrapped for this material among `wrapped`, if there is one. */
function wrappedFor(material: DecryptWith, wrapped: readonly WrappedKey[]): WrappedKey | undefined {
  const id = materialId(material).toUpperCase();
  return wrapped.find((w) => w.kind === material.kind && w.id.toUpperCase() === id);
}

/** True when one of `wrapped` is for this material: unwrapWith will find it. */
export function isWrappedFor(material: DecryptWith, wrapped: readonly WrappedKey[]): boolean {
  return wrappedFor(material, wrapped) !== undefined;
}

/** The ids of the recipients none of `wrapped` is for: their material alone would not open it. */
export function recipientsMissing(wrapped: readonly WrappedKey[], recipients: readonly EncryptFor[]): string[] {
  const has = new Set(wrapped.map((w) => w.id.toUpperCase()));
  return recipients.map(recipientId).filter((id) => !has.has(id.toUpperCase()));
}

/** True when `wrapped` is for exactly these recipients, no fewer and no more. */
export function wrappedForExactly(wrapped: readonly WrappedKey[], recipients: readonly EncryptFor[]): boolean {
  const wanted = new Set(recipients.map((r) => recipientId(r).toUpperCase()));
  return recipientsMissing(wrapped, recipients).length === 0 && new Set(wrapped.map((w) => w.id.toUpperCase())).size === wanted.size;
}

export function unwrapWith(material: DecryptWith, wrapped: readonly WrappedKey[], backupName: string): Buffer {
  const id = materialId(material);
  const mine = wrappedFor(material, wrapped);
  if (!mine) {
    const recorded = wrapped.map((w) => `${w.kind === 'Certificate' ? 'certificate' : 'key'} ${w.id}`).join(', ') || 'nobody';
    throw new AzsError(
      `Backup ${backupName} was not encrypted for the ${material.kind === 'Certificate' ? 'certificate' : 'key'} given (${id}); it was encrypted for ${recorded}.`,
      {
        errorId: 'WrongDecryptionMaterial',
        category: 'SecurityError',
        exitCode: ExitCode.Integrity,
        targetObject: backupName,
        recommendedAction:
          'Give the .pfx of the certificate, or the key, whose thumbprint or key id the backup records ' +
          '(Get-InfrastructureBackup shows it).',
      },
    );
  }
  return mine.kind === 'Certificate' && material.kind === 'Certificate'
    ? unwrapWithPrivateKey(mine.value, material.privateKeyPem)
    : unwrapWithSymmetricKey(mine.value, (material as { key: Buffer }).key, backupName);
}

/**
 * Wrapped keys as the XML files that carry them hold them (BackupInfo.xml, the repository's
 * config.xml): `<Recipient Kind="…" Id="…" Algorithm="…">base64</Recipient>`, in the shape
 * fast-xml-parser builds from and reads into (attributes prefixed `@_`). The Kind is checked by the
 * reader of each file, which knows what to call it when it is wrong.
 */
export function wrappedKeysToXml(keys: readonly WrappedKey[]): Record<string, string>[] {
  return keys.map((k) => ({ '@_Kind': k.kind, '@_Id': k.id, '@_Algorithm': k.algorithm, '#text': k.value.toString('base64') }));
}

export function wrappedKeysFromXml(elements: readonly Record<string, unknown>[]): WrappedKey[] {
  return elements.map((r) => ({
    kind: r['@_Kind'] as WrappedKey['kind'],
    id: String(r['@_Id']),
    algorithm: r['@_Algorithm'] as WrappedKey['algorithm'],
    value: Buffer.from(String(r['#text'] ?? ''), 'base64'),
  }));
}
