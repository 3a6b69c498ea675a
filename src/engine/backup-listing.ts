import { isAzsError } from '../errors.js';
import { backupNotFound, listShare, readBackupInfos } from '../catalog/share-catalog.js';
import type { Target } from '../targets/target.js';
import { recordFromInfo, type BackupRecord } from './backup-record.js';
import { JobStore, withoutProcess } from './job-store.js';

/**
 * Backups as Get-InfrastructureBackup shows them: the share is the truth for what exists; local job
 * history adds backups still running and the ones that failed before anything was committed.
 */
/** Hears of each backup whose BackupInfo.xml could not be read: it still lists, as unreadable. */
export type UnreadableBackup = (message: string, backupName: string) => void;

/**
 * A backup whose BackupInfo.xml cannot be read, parsed or trusted still lists (one bad file must
 * not hide the others), as Failed, not restorable, its Progress saying it is unreadable and why.
 */
export async function listBackups(
  target: Target,
  sharePath: string,
  home: string,
  warn: UnreadableBackup = () => {},
): Promise<BackupRecord[]> {
  // Job records first, then the share: a job that commits between the two reads is then seen on
  // the share. Read the other way round, a job could finish after the share was listed and be
  // dropped as "on the share" while it was not in the listing.
  const jobs = new JobStore(home).list();
  const { backups } = await listShare(target);
  const infos = await readBackupInfos(target, backups);
  const onShare = backups.map((entry, i): BackupRecord => {
    const read = infos[i]!;
    if (!isAzsError(read)) {
      const record = recordFromInfo(read.info, sharePath);
      if (read.digestValid) return record;
      // What it says of itself cannot be trusted, least of all that it can be restored.
      warn(`Backup ${entry.name}: its BackupInfo.xml was changed after the backup was written (its digest does not match).`, entry.name);
      return {
        ...record,
        Status: 'Failed',
        IsCloudRecoveryReady: false,
        Progress:
          'Its BackupInfo.xml was changed after the backup was written (its digest does not match): do not restore from it, and check ' +
          'the share for tampering (Test-InfrastructureBackup).',
      };
    }
    warn(`Backup ${entry.name} is listed as unreadable: ${read.message}`, entry.name);
    return {
      Name: entry.name,
      Status: 'Failed',
      RoleStatus: [],
      CreatedDateTime: entry.time.toISOString(),
      TimeTakenToCreate: null,
      BackupDataVersion: '',
      EncryptionCertThumbprint: null,
      EncryptionKeyId: null,
      Size: 0,
      IsCloudRecoveryReady: false,
      SharePath: sharePath,
      Progress: `Unreadable (${read.errorId}): ${read.message}`,
    };
  });
  const known = new Set(onShare.map((b) => b.Name));
  const fromJobs = jobs
    .filter((j) => !known.has(j.Name) && j.SharePath === sharePath && j.Status !== 'Succeeded' && j.Status !== 'PartialSucceeded')
    .map(withoutProcess);
  return [...onShare, ...fromJobs].sort((a, b) => b.CreatedDateTime.localeCompare(a.CreatedDateTime));
}

export async function getBackup(
  target: Target,
  sharePath: string,
  home: string,
  name: string,
  warn?: UnreadableBackup,
): Promise<BackupRecord> {
  const found = (
    await listBackups(target, sharePath, home, (message, backup) => backup === name.toLowerCase() && warn?.(message, backup))
  ).find((b) => b.Name === name.toLowerCase());
  if (!found) throw backupNotFound(name, target.location);
  return found;
}
