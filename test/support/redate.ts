import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseBackupInfo, sealKeysFor, serializeBackupInfo } from '../../src/catalog/backup-info.js';
import { stampOf } from '../../src/catalog/layout.js';
import { unwrapWith } from '../../src/crypto/recipient.js';
import { parseSymmetricKey, symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import type { Drill } from './cli.js';

/**
 * Makes a committed backup of a key-mode drill look as if the service had made it at `when`: its
 * BackupInfo.xml re-sealed with the new time and moved into that time's stamp folder, as retention
 * tests need. (Moving the folder alone is what an attacker does, and is refused.) Returns the
 * backup's new folder relative to the share.
 */
export async function redate(d: Drill, name: string, when: Date): Promise<string> {
  const from = await d.backupFolder(name);
  const key = parseSymmetricKey(d.key!);
  const recipient = { kind: 'Key' as const, keyId: symmetricKeyId(key), key };
  const { info } = parseBackupInfo(await fs.readFile(path.join(from, 'BackupInfo.xml'), 'utf8'), name);
  const dataKey = unwrapWith(recipient, info.recipients, name);
  const stamp = stampOf(when);
  const rel = `MASBackup/${stamp}/${name}`;
  const to = path.join(d.share, rel);
  await fs.mkdir(path.dirname(to), { recursive: true });
  await fs.rename(from, to);
  await fs.rmdir(path.dirname(from)).catch(() => {}); // the old stamp, unless another backup shares it
  const dated = { ...info, createdDateTime: when, completedDateTime: new Date(when.getTime() + 1000) };
  await fs.writeFile(path.join(to, 'BackupInfo.xml'), serializeBackupInfo(dated, sealKeysFor(dataKey, name, stamp, [recipient])));
  return rel;
}
