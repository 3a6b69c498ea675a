import { authenticatorKey, backupInfoMacKey, type BackupInfo, type ParsedBackupInfo } from '../catalog/backup-info.js';
import { stampOf } from '../catalog/layout.js';
import { findBackup, readBackupInfo, type BackupEntry } from '../catalog/share-catalog.js';
import { unwrapWith, type DecryptWith } from '../crypto/recipient.js';
import { AzsError, ExitCode } from '../errors.js';
import type { Target } from '../targets/target.js';

/**
 * How a backup was proven to come from us: the symmetric key (only its holder can wrap a data key
 * that unwraps), a certificate's authenticator (only the holder of the secret its private key
 * yields can make one), or not at all (an older certificate-mode backup, opened on request).
 */
export type Authenticity = 'Key' | 'Certificate' | 'Unauthenticated';

export interface OpenedBackup {
  entry: BackupEntry;
  info: BackupInfo;
  parsed: ParsedBackupInfo;
  /** Present when decryption material was given: the data key, with BackupInfo.xml authenticated. */
  dataKey?: Buffer;
  /** Present when decryption material was given. */
  authenticity?: Authenticity;
}

export interface OpenOptions {
  /**
   * Opens a certificate-mode backup that carries no authenticator for the certificate given. Only
   * for backups made before authentication existed, by an operator who knows the share was not
   * written by anyone else: such a backup may have been made by anyone holding the public .cer.
   */
  allowUnauthenticated?: boolean;
}

/**
 * Finds a backup on the share and reads BackupInfo.xml; with material, unwraps the data key and
 * proves the backup is ours before anything in it (role definitions, owners, commands) is used.
 */
export async function openBackup(target: Target, name: string, material?: DecryptWith, options: OpenOptions = {}): Promise<OpenedBackup> {
  const entry = await findBackup(target, name);
  const parsed = await readBackupInfo(target, entry);
  assertInItsStamp(entry, parsed.info);
  if (!material) return { entry, info: parsed.info, parsed };
  const dataKey = unwrapWith(material, parsed.info.recipients, entry.name);
  parsed.authenticate(backupInfoMacKey(dataKey, entry.name, entry.stamp, parsed.formatVersion));
  return { entry, info: parsed.info, parsed, dataKey, authenticity: proveAuthorship(parsed, entry, material, options) };
}

function proveAuthorship(parsed: ParsedBackupInfo, entry: BackupEntry, material: DecryptWith, options: OpenOptions): Authenticity {
  // The key wrap under the symmetric key is itself the proof: the MAC above is keyed from what it unwrapped.
  if (material.kind === 'Key') return 'Key';
  if (options.allowUnauthenticated && !parsed.authenticatorIds.includes(material.thumbprint.toUpperCase())) return 'Unauthenticated';
  parsed.authenticateCertificate(material.thumbprint, authenticatorKey(material.authenticationKey, entry.name, entry.stamp));
  return 'Certificate';
}

/**
 * A backup lies in the stamp folder of its own creation time, which its seal covers: one moved into
 * another stamp (to survive retention, or to be taken for another backup) is refused.
 */
function assertInItsStamp(entry: BackupEntry, info: BackupInfo): void {
  const created = info.createdDateTime;
  const own = Number.isNaN(created.getTime()) ? undefined : stampOf(created);
  if (own === entry.stamp) return;
  throw new AzsError(
    `BackupInfo.xml of backup ${entry.name} is damaged or was changed: the backup was made at ${own ?? 'an unreadable time'} but lies in stamp folder ${entry.stamp}.`,
    {
      errorId: 'BackupInfoTampered',
      category: 'InvalidData',
      exitCode: ExitCode.Integrity,
      targetObject: entry.name,
      recommendedAction:
        'Do not restore from this backup; restore from another one (Get-InfrastructureBackup) and check the share for tampering.',
    },
  );
}
