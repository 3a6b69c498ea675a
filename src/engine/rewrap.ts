import { Readable } from 'node:stream';
import { backupInfoMacKey, serializeBackupInfo } from '../catalog/backup-info.js';
import { INFO_FILE } from '../catalog/layout.js';
import { listShare } from '../catalog/share-catalog.js';
import { materialId, wrapFor, type DecryptWith, type EncryptFor } from '../crypto/recipient.js';
import type { Target } from '../targets/target.js';
import { recordFromInfo, type BackupRecord } from './backup-record.js';
import { openBackup } from './open-backup.js';

/**
 * After a rotation, wraps a backup's data key for the new recipient in place of the old one and
 * re-seals BackupInfo.xml. The role files are not touched: their chunks are under the data key,
 * which does not change. The new BackupInfo.xml is fully written before the old one is moved aside.
 */
export async function rewrapBackup(target: Target, sharePath: string, name: string, oldMaterial: DecryptWith, recipient: EncryptFor): Promise<BackupRecord> {
  const { entry, info, dataKey } = await openBackup(target, name, oldMaterial);
  const newId = recipient.kind === 'Certificate' ? recipient.thumbprint : recipient.keyId;
  if (info.recipients.length === 1 && info.recipients[0]!.id === newId) return recordFromInfo(info, sharePath);
  const updated = { ...info, recipients: [wrapFor(recipient, dataKey!, entry.name)] };
  const text = serializeBackupInfo(updated, backupInfoMacKey(dataKey!, entry.name));
  const file = `${entry.folder}/${INFO_FILE}`;
  await target.write(`${file}.next`, Readable.from([Buffer.from(text)]));
  await target.rename(file, `${file}.prev`);
  await target.rename(`${file}.next`, file);
  await target.delete(`${file}.prev`);
  return recordFromInfo(updated, sharePath);
}

/** Every backup on the share that the old material opens, or just `name`. */
export async function backupsToRewrap(target: Target, oldMaterial: DecryptWith, name?: string): Promise<string[]> {
  if (name) return [name];
  const id = materialId(oldMaterial).toUpperCase();
  const names: string[] = [];
  for (const entry of (await listShare(target)).backups) {
    const { info } = await openBackup(target, entry.name);
    if (info.recipients.some((r) => r.id.toUpperCase() === id)) names.push(entry.name);
  }
  return names;
}
