import type { ConfigStore, StoredCertificate } from '../config/store.js';
import { CERTIFICATE_SECRET_CONTEXT } from '../engine/share-access.js';
import type { DecryptWith } from '../crypto/recipient.js';
import { usageError } from '../errors.js';

/**
 * What Set-BackupShare makes of -EncryptionCertPath (one or several .cer) and -DecryptionCertPath
 * (the .pfx of some of them, matched by thumbprint). Every file is read and checked before anything
 * is saved, so a bad one changes nothing.
 */

export interface PfxGiven {
  path: string;
  password: string;
  /** The file once read (readPfx): a .pfx is decoded once per command, however many steps need it. */
  read?: Promise<{ info: { thumbprint: string }; privateKeyPem: string }>;
}

/** The .pfx read and decoded, the first time it is asked for. */
async function readPfx(pfx: PfxGiven): Promise<{ info: { thumbprint: string }; privateKeyPem: string }> {
  if (!pfx.read) {
    const { readPfxFile } = await import('../crypto/certificate.js');
    pfx.read = readPfxFile(pfx.path, pfx.password);
  }
  return pfx.read;
}

function givenTwice(what: string, path: string, first: string, thumbprint: string) {
  return usageError(
    `${what} names the certificate ${thumbprint} twice: '${first}' and '${path}'.`,
    'DuplicateCertificate',
    path,
    `Give each certificate once${what === '-EncryptionCertPath' ? '' : ", and each .pfx beside the other certificates' .pfx"}.`,
  );
}

/**
 * The certificates of -EncryptionCertPath, in the order given. One already configured keeps its
 * authentication secret: the secret comes from its private key, which the same thumbprint names.
 */
export async function readEncryptionCertificates(
  paths: readonly string[],
  configured: readonly StoredCertificate[],
): Promise<StoredCertificate[]> {
  if (paths.length === 0) {
    throw usageError(
      '-EncryptionCertPath names no certificate.',
      'EncryptionCertificateMissing',
      'EncryptionCertPath',
      'Give the .cer file of each encryption certificate (New-EncryptionKey -Certificate makes one), separated by commas.',
    );
  }
  const { readCertificateFile } = await import('../crypto/certificate.js');
  const certificates: StoredCertificate[] = [];
  const from: string[] = [];
  for (const path of paths) {
    const info = await readCertificateFile(path);
    if (info.notAfter.getTime() < Date.now()) {
      throw usageError(
        `The certificate ${path} expired on ${info.notAfter.toISOString()}.`,
        'CertificateExpired',
        path,
        'Make a new certificate with New-EncryptionKey -Certificate.',
      );
    }
    const twin = certificates.findIndex((c) => c.thumbprint === info.thumbprint);
    if (twin >= 0) throw givenTwice('-EncryptionCertPath', path, from[twin]!, info.thumbprint);
    const secret = configured.find((c) => c.thumbprint === info.thumbprint)?.authenticationSecret;
    certificates.push({
      thumbprint: info.thumbprint,
      subject: info.subject,
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
      publicKeyPem: info.publicKeyPem,
      ...(secret ? { authenticationSecret: secret } : {}),
    });
    from.push(path);
  }
  return certificates;
}

/**
 * Derives, from each .pfx given, the secret that lets backups prove they were made here, and keeps
 * it sealed with the certificate the .pfx holds; the .pfx itself is let go. A .pfx of none of the
 * certificates is refused.
 */
export async function proveCertificates(
  store: ConfigStore,
  certificates: readonly StoredCertificate[],
  pfxs: readonly PfxGiven[],
): Promise<StoredCertificate[]> {
  if (pfxs.length === 0) return [...certificates];
  const { certificateAuthenticationSecret, pfxDoesNotMatch } = await import('../crypto/certificate-authentication.js');
  const proven = [...certificates];
  const from = new Map<string, string>();
  for (const pfx of pfxs) {
    const { info, privateKeyPem } = await readPfx(pfx);
    const i = proven.findIndex((c) => c.thumbprint === info.thumbprint);
    if (i < 0)
      throw pfxDoesNotMatch(
        proven.map((c) => c.thumbprint),
        info.thumbprint,
        pfx.path,
      );
    const twin = from.get(info.thumbprint);
    if (twin !== undefined) throw givenTwice('-DecryptionCertPath', pfx.path, twin, info.thumbprint);
    from.set(info.thumbprint, pfx.path);
    const secret = certificateAuthenticationSecret(privateKeyPem, info.thumbprint).toString('base64');
    proven[i] = { ...proven[i]!, authenticationSecret: store.seal(secret, CERTIFICATE_SECRET_CONTEXT) };
  }
  return proven;
}

/** The .pfx given, as decryption material (proveCertificates read them already: they are not read again). */
export async function materialsOf(pfxs: readonly PfxGiven[]): Promise<DecryptWith[]> {
  const { certificateAuthenticationKey, certificateAuthenticationSecret } = await import('../crypto/certificate-authentication.js');
  const materials: DecryptWith[] = [];
  for (const pfx of pfxs) {
    const { info, privateKeyPem } = await readPfx(pfx);
    const authenticationKey = certificateAuthenticationKey(certificateAuthenticationSecret(privateKeyPem, info.thumbprint));
    materials.push({ kind: 'Certificate', thumbprint: info.thumbprint, privateKeyPem, authenticationKey });
  }
  return materials;
}
