import { isAzsError } from '../errors.js';
import { ROOT } from '../catalog/layout.js';
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

/** Subfolders looked into for a MASBackup folder: enough for a share's few top folders, bounded on SMB (one request each). */
const FOLDERS_LOOKED_INTO = 20;

/**
 * Why a share given with -Path lists no backup, when the reason is the path: it holds no MASBackup
 * folder. On a rebuilt machine an operator types the share's path from memory, and a listing that
 * is only empty sends them looking for backups that are one folder away (the share's root instead
 * of its folder, or the MASBackup folder itself). Undefined when MASBackup is there.
 */
export async function noBackupFolderHint(target: Target, sharePath: string): Promise<string | undefined> {
  if (await target.stat(ROOT)) return undefined;
  const trimmed = sharePath.replace(/[\\/]+$/, '');
  const separator = trimmed.includes('\\') && !trimmed.includes('/') ? '\\' : '/';
  if (trimmed.split(/[\\/]/).at(-1)?.toLowerCase() === ROOT.toLowerCase()) {
    const parent = trimmed.slice(0, trimmed.length - ROOT.length - 1);
    return `${sharePath} is a ${ROOT} folder itself: give the folder that holds it as -Path (${parent}).`;
  }
  const folders = (await target.list('')).filter((e) => e.isDirectory).slice(0, FOLDERS_LOOKED_INTO);
  const holders: string[] = [];
  for (const folder of folders) if ((await target.stat(`${folder.name}/${ROOT}`))?.isDirectory) holders.push(folder.name);
  if (holders.length > 0) {
    const paths = holders.map((h) => `${trimmed}${separator}${h}`);
    return `${sharePath} holds no ${ROOT} folder, but ${paths.join(', ')} ${holders.length === 1 ? 'does' : 'do'}: give ${holders.length === 1 ? 'it' : 'one of them'} as -Path.`;
  }
  return `${sharePath} holds no ${ROOT} folder: no backup was made there. Give the folder that Set-BackupShare -Path named when the backups were made.`;
}
