/**
 * Where things live on the share (SPEC section 5):
 *
 *   MASBackup/<yyyyMMddTHHmmssZ>/<BackupName>/BackupInfo.xml
 *   MASBackup/<yyyyMMddTHHmmssZ>/<BackupName>/<RoleName>.azsrole   a full copy (formats 1, 2)
 *   MASBackup/<yyyyMMddTHHmmssZ>/<BackupName>/<RoleName>.azscat    a catalog of chunks in AzsRepository/ (format 3)
 *
 * A backup is written under `<BackupName>.partial` and renamed to `<BackupName>` once complete; a
 * removal first renames it to `<BackupName>.deleting`. Only a folder named exactly by a GUID that
 * holds BackupInfo.xml lists as a backup; the suffixed folders are leftovers for prune.
 */

export const ROOT = 'MASBackup';
export const INFO_FILE = 'BackupInfo.xml';
export const ROLE_FILE_SUFFIX = '.azsrole';
/** Format 3: a role's catalog of chunks in the location's repository, sealed as a role file is. */
export const CATALOG_FILE_SUFFIX = '.azscat';
export const PARTIAL_SUFFIX = '.partial';
export const DELETING_SUFFIX = '.deleting';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const STAMP = /^\d{8}T\d{6}Z$/;

export function isBackupName(name: string): boolean {
  return GUID.test(name);
}

export function isStampFolder(name: string): boolean {
  return STAMP.test(name);
}

/** 2026-11-27T04:48:11.123Z → 20261127T044811Z */
export function stampOf(time: Date): string {
  return time
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

export function stampTime(stamp: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(stamp);
  if (!m) return new Date(NaN);
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

export function backupFolder(stamp: string, name: string): string {
  return `${ROOT}/${stamp}/${name}`;
}

export function partialFolder(stamp: string, name: string): string {
  return `${backupFolder(stamp, name)}${PARTIAL_SUFFIX}`;
}

export function roleFileName(roleName: string): string {
  return `${roleName}${ROLE_FILE_SUFFIX}`;
}

export function catalogFileName(roleName: string): string {
  return `${roleName}${CATALOG_FILE_SUFFIX}`;
}
