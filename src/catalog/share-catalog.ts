import { AzsError, ExitCode, isAzsError } from '../errors.js';
import { ReadFailure } from '../io/bounded-read.js';
import { isPartialName } from '../targets/paths.js';
import { notFound } from '../targets/share-errors.js';
import type { Target, TargetEntry } from '../targets/target.js';
import { MAX_BACKUP_INFO_BYTES, parseBackupInfo, type ParsedBackupInfo } from './backup-info.js';
import { DELETING_SUFFIX, INFO_FILE, ROOT, backupFolder, isBackupName, isStampFolder, stampTime } from './layout.js';

/** The backups and leftovers found under MASBackup on one share. */

export interface BackupEntry {
  name: string;
  stamp: string;
  /** Folder relative to the share root. */
  folder: string;
  time: Date;
  /** The size of its BackupInfo.xml as listed, when the listing says. */
  infoSize?: number;
}

export interface ShareListing {
  /** Complete backups (a GUID folder holding BackupInfo.xml), newest first. */
  backups: BackupEntry[];
  /**
   * Folders of interrupted writes or removals, empty stamp folders, and the temporary files of
   * interrupted rewrites inside backups: prune removes them.
   */
  leftovers: string[];
}

/** One listing of the whole tree, so a share of many backups costs one request on SMB. */
export async function listShare(target: Target): Promise<ShareListing> {
  const backups: BackupEntry[] = [];
  const leftovers: string[] = [];
  const tree = await target.listTree(ROOT);
  const present = new Map(tree.map((e) => [e.path, e]));
  const childrenOf = new Map<string, TargetEntry[]>();
  for (const e of tree) {
    const parent = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
    const siblings = childrenOf.get(parent);
    if (siblings) siblings.push(e);
    else childrenOf.set(parent, [e]);
  }
  for (const stampEntry of childrenOf.get('') ?? []) {
    if (!stampEntry.isDirectory || !isStampFolder(stampEntry.name)) continue;
    const stamp = stampEntry.name;
    const children = childrenOf.get(stamp) ?? [];
    if (children.length === 0) leftovers.push(`${ROOT}/${stamp}`);
    for (const child of children) {
      const folder = `${ROOT}/${stamp}/${child.name}`;
      const info = present.get(`${stamp}/${child.name}/${INFO_FILE}`);
      if (child.isDirectory && isBackupName(child.name) && info) {
        backups.push({
          name: child.name.toLowerCase(),
          stamp,
          folder,
          time: stampTime(stamp),
          ...(info.isDirectory ? {} : { infoSize: info.size }),
        });
        // A rewrite of a committed backup's file (Update-BackupEncryption) that was interrupted.
        for (const file of childrenOf.get(`${stamp}/${child.name}`) ?? []) {
          if (!file.isDirectory && isPartialName(file.name)) leftovers.push(`${folder}/${file.name}`);
        }
      } else {
        leftovers.push(folder);
      }
    }
  }
  backups.sort((a, b) => b.time.getTime() - a.time.getTime() || a.name.localeCompare(b.name));
  return { backups, leftovers };
}

export function backupNotFound(name: string, location: string): AzsError {
  return new AzsError(`No backup named ${name} on ${location}.`, {
    errorId: 'BackupNotFound',
    category: 'ObjectNotFound',
    targetObject: name,
    recommendedAction: 'List the backups with Get-InfrastructureBackup (give -Path for a share other than the configured one).',
  });
}

export async function findBackup(target: Target, name: string): Promise<BackupEntry> {
  const wanted = name.toLowerCase();
  const entry = (await listShare(target)).backups.find((b) => b.name === wanted);
  if (!entry) throw backupNotFound(name, target.location);
  return entry;
}

export async function readBackupInfo(target: Target, entry: BackupEntry): Promise<ParsedBackupInfo> {
  const [read] = await readBackupInfos(target, [entry]);
  if (isAzsError(read)) throw read;
  return read!;
}

/**
 * The BackupInfo.xml of every entry, fetched together (one request on SMB). An entry whose file
 * has gone or does not parse gets the error instead; share failures (unreachable, refused) throw.
 */
export async function readBackupInfos(target: Target, entries: readonly BackupEntry[]): Promise<(ParsedBackupInfo | AzsError)[]> {
  // One listed as too large is not fetched at all (smbclient would bring all of it).
  const fetched = entries.filter((e) => !((e.infoSize ?? 0) > MAX_BACKUP_INFO_BYTES));
  const read = await target.readSmallFiles(
    fetched.map((e) => `${e.folder}/${INFO_FILE}`),
    MAX_BACKUP_INFO_BYTES,
  );
  return entries.map((entry) => {
    const i = fetched.indexOf(entry);
    const text = i < 0 ? tooLargeInfo(entry) : read[i];
    if (text === undefined) return notFound(target.location, `${entry.folder}/${INFO_FILE}`);
    if (isAzsError(text)) return unreadableInfo(entry, text);
    try {
      return parseBackupInfo(text.toString('utf8'), entry.name);
    } catch (e) {
      if (isAzsError(e)) return e;
      throw e;
    }
  });
}

function tooLargeInfo(entry: BackupEntry): AzsError {
  return new AzsError(`It is ${entry.infoSize} bytes, over the limit of ${MAX_BACKUP_INFO_BYTES} bytes; it was not read.`, {
    errorId: ReadFailure.TooLarge,
    category: 'InvalidData',
  });
}

/** A BackupInfo.xml refused unread (too large, not a file): the backup lists, as one that cannot be used. */
function unreadableInfo(entry: BackupEntry, refusal: AzsError): AzsError {
  const tooLarge = refusal.errorId === ReadFailure.TooLarge;
  return new AzsError(`The BackupInfo.xml of backup ${entry.name} (${entry.folder}) is unreadable. ${refusal.message}`, {
    errorId: tooLarge ? 'BackupInfoTooLarge' : 'BackupInfoUnreadable',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    targetObject: entry.name,
    recommendedAction:
      'Do not restore from this backup; restore from another one (Get-InfrastructureBackup), check the share for damage or tampering, ' +
      'and remove it with Remove-InfrastructureBackup.',
    cause: refusal,
  });
}

/** Removes a backup so that an interruption never leaves a half-deleted backup that lists. */
export async function removeBackup(target: Target, entry: BackupEntry): Promise<void> {
  if (target.renameCopies) {
    // No cheap rename: BackupInfo.xml goes first, and the rest is a leftover from then on.
    await target.delete(`${entry.folder}/${INFO_FILE}`);
    await target.delete(entry.folder);
  } else {
    const aside = `${entry.folder}${DELETING_SUFFIX}`;
    await target.rename(entry.folder, aside);
    await target.delete(aside);
  }
  await removeIfEmpty(target, `${ROOT}/${entry.stamp}`);
}

export async function removeIfEmpty(target: Target, folder: string): Promise<void> {
  if ((await target.list(folder)).length === 0) await target.delete(folder);
}

export { backupFolder };
