import { backupInfoMacKey, type BackupInfo, type ParsedBackupInfo } from '../catalog/backup-info.js';
import { findBackup, readBackupInfo, type BackupEntry } from '../catalog/share-catalog.js';
import { unwrapWith, type DecryptWith } from '../crypto/recipient.js';
import type { Target } from '../targets/target.js';

export interface OpenedBackup {
  entry: BackupEntry;
  info: BackupInfo;
  parsed: ParsedBackupInfo;
  /** Present when decryption material was given: the data key, with BackupInfo.xml authenticated. */
  dataKey?: Buffer;
}

/** Finds a backup on the share, reads BackupInfo.xml, and with material unwraps and authenticates. */
export async function openBackup(target: Target, name: string, material?: DecryptWith): Promise<OpenedBackup> {
  const entry = await findBackup(target, name);
  const parsed = await readBackupInfo(target, entry);
  if (!material) return { entry, info: parsed.info, parsed };
  const dataKey = unwrapWith(material, parsed.info.recipients, entry.name);
  parsed.authenticate(backupInfoMacKey(dataKey, entry.name));
  return { entry, info: parsed.info, parsed, dataKey };
}
