import { AzsError, ExitCode, usageError } from '../errors.js';
import type { ConfigStore, StoredConfig } from '../config/store.js';
import { certificateAuthenticationKey, certificateAuthenticationSecret } from '../crypto/certificate-authentication.js';
import { privateDirOf } from '../process/private-dir.js';
import type { DecryptWith, EncryptFor } from '../crypto/recipient.js';
/** A credential as cmdlets receive it (the host binds PSCredential to this shape). */
export interface Credential {
  UserName: string;
  Password: string;
}
import type { Target } from '../targets/target.js';
import type { BlobCredential } from '../targets/blob.js';
import { isBlobPath } from '../targets/location.js';

/**
 * What cmdlets share: the configured share (or one given with -Path and a credential), the
 * recipients new backups are encrypted for, and decryption material from -DecryptionCertPath /
 * -DecryptionCertPassword or -EncryptionKey. Cmdlets stay one sentence long because of this.
 */

export interface ShareParameters {
  Path?: string;
  UserName?: string;
  Password?: string;
  Credential?: Credential;
  StorageAccountKey?: string;
  SasToken?: string;
  /** The secrets above that only AZSBACKUP_<NAME> supplied, the parameter not being named. */
  fromEnvironment?: ReadonlySet<string>;
}

/**
 * The share parameters a cmdlet was given. A password named on the command line (`-Password -`)
 * without -UserName is a usage error: it would otherwise be dropped without a word. One that only
 * sits in AZSBACKUP_PASSWORD is left alone, as any unused environment variable is.
 */
export function shareParameters(p: ShareParameters, secretsFromEnvironment?: ReadonlySet<string>): ShareParameters {
  if (p.Password !== undefined && p.UserName === undefined && p.Credential === undefined && !secretsFromEnvironment?.has('Password')) {
    throw usageError(
      '-Password was given without -UserName, so it would not be used.',
      'PasswordWithoutUserName',
      'Password',
      "Give the account with -UserName 'DOMAIN\\user' (or both at once with -Credential), or leave -Password out to use the configured credential.",
    );
  }
  return secretsFromEnvironment ? { ...p, fromEnvironment: secretsFromEnvironment } : p;
}

const blobSecrets = ['StorageAccountKey', 'SasToken'] as const;

/**
 * The share parameters that apply to the share at `path`. A storage account key or SAS token that
 * only sits in AZSBACKUP_STORAGEACCOUNTKEY or AZSBACKUP_SASTOKEN (exported for a restore from a
 * container, say) reaches a blob container alone: for an SMB share or a local folder it is left
 * alone, as AZSBACKUP_PASSWORD without -UserName is. Taken for that share's credential, it replaced
 * the stored account (Set-BackupShare of the schedule alone) or hid it ('needs a credential').
 * Named on the command line, it stays, and is refused there as the wrong kind.
 */
export function credentialParameters(p: ShareParameters, path: string | undefined): ShareParameters {
  if (path === undefined || isBlobPath(path)) return p;
  const kept = { ...p };
  for (const name of blobSecrets) if (p.fromEnvironment?.has(name)) delete kept[name];
  return kept;
}

export interface ShareAccess {
  path: string;
  credential?: { userName: string; password: string } | BlobCredential;
  /** This process's private folder under the home (src/process/private-dir.ts), for the SMB auth file. */
  privateDir?: string;
}

/** -StorageAccountKey or -SasToken, for a blob container. */
function blobCredentialOf(p: ShareParameters): BlobCredential | undefined {
  if (p.StorageAccountKey !== undefined && p.SasToken !== undefined) {
    throw usageError(
      'Give either -StorageAccountKey or -SasToken, not both.',
      'CredentialConflict',
      'SasToken',
      'Reach the blob container with the account key (-StorageAccountKey) or with a SAS token (-SasToken): leave the other out.',
    );
  }
  if (p.StorageAccountKey !== undefined) return { accountKey: p.StorageAccountKey };
  if (p.SasToken !== undefined) return { sasToken: p.SasToken };
  return undefined;
}

/** The credential stored with the configured share, opened. */
function storedCredential(store: ConfigStore, share: NonNullable<StoredConfig['share']>): ShareAccess['credential'] {
  if (share.storageAccountKey) return { accountKey: store.open(share.storageAccountKey, 'storage-account-key') };
  if (share.sasToken) return { sasToken: store.open(share.sasToken, 'sas-token') };
  if (share.userName === undefined) return undefined;
  return { userName: share.userName, password: share.password ? store.open(share.password, 'share-password') : '' };
}

export function notConfigured(what: string): AzsError {
  return new AzsError(`No backup ${what} is configured.`, {
    errorId: 'BackupShareNotConfigured',
    category: 'InvalidOperation',
    exitCode: ExitCode.Usage,
    recommendedAction: `Run Set-BackupShare first${what === 'share' ? ', or give -Path and a credential' : ''}.`,
  });
}

/** -Path with -Credential or -UserName/-Password, else the configured share. */
export function shareAccess(store: ConfigStore, parameters: ShareParameters, config: StoredConfig = store.read()): ShareAccess {
  const p = credentialParameters(parameters, parameters.Path ?? config.share?.path);
  if (p.Credential && (p.UserName !== undefined || p.Password !== undefined)) {
    throw usageError(
      'Give either -Credential or -UserName with -Password, not both.',
      'CredentialConflict',
      'Credential',
      'Give the account as one -Credential, or as -UserName with -Password: leave the other out.',
    );
  }
  const blob = blobCredentialOf(p);
  if (blob && (p.Credential || p.UserName !== undefined)) {
    throw usageError(
      'A blob container takes -StorageAccountKey or -SasToken; a share takes -Credential or -UserName. Give one kind.',
      'CredentialConflict',
      p.Credential ? 'Credential' : 'UserName',
      'For an https:// container give -StorageAccountKey or -SasToken; for an SMB share or folder give -Credential or -UserName with -Password.',
    );
  }
  const given = p.Credential
    ? { userName: p.Credential.UserName, password: p.Credential.Password }
    : p.UserName !== undefined
      ? { userName: p.UserName, password: p.Password ?? '' }
      : blob;
  // A -Path that is the configured share (as a piped Backup's SharePath is) uses its stored credential.
  const isConfigured = p.Path === undefined || p.Path === config.share?.path;
  const privateDir = privateDirOf(store.home);
  if (!isConfigured) return { path: p.Path!, privateDir, ...(given ? { credential: given } : {}) };
  if (!config.share) throw notConfigured('share');
  const stored = storedCredential(store, config.share);
  return { path: config.share.path, privateDir, ...((given ?? stored) ? { credential: given ?? stored } : {}) };
}

export async function openShare(access: ShareAccess): Promise<Target> {
  const { openTarget } = await import('../targets/index.js');
  return openTarget(access.path, access.credential, access.privateDir);
}

/**
 * The recipients configured for new backups: the symmetric key, or every configured certificate
 * (each backup's data key is wrapped for each, so any one of their .pfx restores it).
 */
export function configuredRecipients(store: ConfigStore, config: StoredConfig = store.read()): EncryptFor[] {
  const enc = config.encryption;
  if (!enc) throw notConfigured('encryption key or certificate');
  if (enc.mode === 'Key') return [{ kind: 'Key', keyId: enc.keyId, key: Buffer.from(store.open(enc.key, 'encryption-key'), 'base64') }];
  return enc.certificates.map((c) => {
    const secret = c.authenticationSecret && Buffer.from(store.open(c.authenticationSecret, CERTIFICATE_SECRET_CONTEXT), 'base64');
    return {
      kind: 'Certificate',
      thumbprint: c.thumbprint,
      publicKeyPem: c.publicKeyPem,
      ...(secret ? { authenticationKey: certificateAuthenticationKey(secret) } : {}),
    };
  });
}

/** Where the sealed certificate authentication secret is bound in the configuration. */
export const CERTIFICATE_SECRET_CONTEXT = 'certificate-authentication-secret';

export interface DecryptionParameters {
  DecryptionCertPath?: string;
  DecryptionCertPassword?: string;
  EncryptionKey?: string;
}

/** Decryption material from parameters, or undefined when none was given. */
export async function decryptionMaterial(p: DecryptionParameters): Promise<DecryptWith | undefined> {
  if (p.DecryptionCertPath !== undefined) {
    const { readPfxFile } = await import('../crypto/certificate.js');
    const { info, privateKeyPem } = await readPfxFile(p.DecryptionCertPath, p.DecryptionCertPassword ?? '');
    const authenticationKey = certificateAuthenticationKey(certificateAuthenticationSecret(privateKeyPem, info.thumbprint));
    return { kind: 'Certificate', thumbprint: info.thumbprint, privateKeyPem, authenticationKey };
  }
  if (p.EncryptionKey !== undefined) {
    const { parseSymmetricKey, symmetricKeyId } = await import('../crypto/symmetric-key.js');
    const key = parseSymmetricKey(p.EncryptionKey);
    return { kind: 'Key', keyId: symmetricKeyId(key), key };
  }
  return undefined;
}
