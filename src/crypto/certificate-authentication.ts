import { constants, createPublicKey, hkdfSync, sign, verify } from 'node:crypto';
import { AzsError, ExitCode } from '../errors.js';

/**
 * Who made a certificate-mode backup. The certificate is public, so wrapping a data key for it
 * proves nothing: anyone with the .cer and write access to the share could make a backup that the
 * .pfx opens. What proves authorship is a secret only the private key yields: the RSA PKCS#1 v1.5
 * signature (deterministic, so the restorer computes the same bytes again from the .pfx) over a
 * fixed label naming the certificate. The operator hands it to the service once, at setup, by giving
 * the .pfx to Set-BackupShare; the service keeps only this secret (sealed, write-only, like a
 * symmetric key) and never the private key. A fresh machine re-derives it from the .pfx.
 *
 * The public key verifies the secret (so a wrong .pfx is refused at setup), but cannot produce it.
 * docs/FORMAT.md section 3 describes the construction.
 */

const LABEL = 'AzsBackup certificate authentication v1';

function labelFor(thumbprint: string): Buffer {
  return Buffer.from(`${LABEL}\0${thumbprint.toUpperCase()}`, 'utf8');
}

/** The secret: RSASSA-PKCS1-v1_5 with SHA-256 over the label and thumbprint. Needs the private key. */
export function certificateAuthenticationSecret(privateKeyPem: string, thumbprint: string): Buffer {
  return sign('sha256', labelFor(thumbprint), { key: privateKeyPem, padding: constants.RSA_PKCS1_PADDING });
}

/** True when `secret` is what the private key of this public key yields for this thumbprint. */
export function isCertificateAuthenticationSecret(publicKeyPem: string, thumbprint: string, secret: Buffer): boolean {
  try {
    return verify('sha256', labelFor(thumbprint), { key: createPublicKey(publicKeyPem), padding: constants.RSA_PKCS1_PADDING }, secret);
  } catch {
    return false;
  }
}

/** The key BackupInfo.xml authenticators are derived from; the signature itself is never used as a key. */
export function certificateAuthenticationKey(secret: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), Buffer.from('AzsBackup certificate authentication key v1', 'utf8'), 32));
}

/** The .pfx given at setup is not the private key of the certificate being configured. */
export function pfxDoesNotMatch(certThumbprints: readonly string[], pfxThumbprint: string, pfxPath: string): AzsError {
  const expected =
    certThumbprints.length === 1
      ? `the encryption certificate ${certThumbprints[0]}`
      : `any of the encryption certificates ${certThumbprints.join(', ')}`;
  return new AzsError(`The .pfx '${pfxPath}' holds certificate ${pfxThumbprint}, not ${expected}.`, {
    errorId: 'DecryptionCertificateMismatch',
    category: 'InvalidArgument',
    exitCode: ExitCode.Usage,
    targetObject: pfxPath,
    recommendedAction:
      'Give the .pfx made together with a .cer of -EncryptionCertPath (New-EncryptionKey -Certificate writes both), ' +
      'or add its certificate to -EncryptionCertPath.',
  });
}

/** Said by every command that works with a certificate configured without its authentication secret. */
export function unauthenticatedCertificateWarning(thumbprint: string): string {
  return (
    `The encryption certificate ${thumbprint} was configured without its .pfx, so backups cannot prove they were made by this service, ` +
    'and a restore with its .pfx refuses them unless given -AllowUnauthenticated. Run Set-BackupShare -DecryptionCertPath <its .pfx> ' +
    '(with -DecryptionCertPassword) once: the service keeps a secret derived from the private key, never the .pfx.'
  );
}
