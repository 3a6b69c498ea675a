import type { BackupInfo, BackupStatus } from '../catalog/backup-info.js';
import { ExitCode } from '../errors.js';

/** The AzsBackup.Backup object (manifests/Types.xml), as the engine reports a backup. */
export interface RoleStatusRecord {
  RoleName: string;
  Provider: string;
  Status: BackupStatus;
  Size: number;
  StoredSize: number;
  /** Milliseconds. */
  Duration: number;
  Error: string | null;
}

/** A role's status before its backup starts. */
export function queuedRoleStatus(role: { name: string; provider: string }): RoleStatusRecord {
  return { RoleName: role.name, Provider: role.provider, Status: 'Queued', Size: 0, StoredSize: 0, Duration: 0, Error: null };
}

export interface BackupRecord {
  Name: string;
  Status: BackupStatus;
  RoleStatus: RoleStatusRecord[];
  CreatedDateTime: string;
  /** Milliseconds. */
  TimeTakenToCreate: number | null;
  BackupDataVersion: string;
  EncryptionCertThumbprint: string | null;
  EncryptionKeyId: string | null;
  Size: number;
  IsCloudRecoveryReady: boolean;
  SharePath: string;
  Progress: string | null;
}

export function recordFromInfo(info: BackupInfo, sharePath: string): BackupRecord {
  const cert = info.recipients.find((r) => r.kind === 'Certificate');
  const key = info.recipients.find((r) => r.kind === 'Key');
  const roleStatus = info.roles.map((r) => ({
    RoleName: r.definition.name,
    Provider: r.definition.provider,
    Status: r.status,
    Size: r.size,
    // A backup in the repository stores its catalogs and the chunks it added; the rest it shares.
    StoredSize: r.files.reduce((n, f) => n + f.size, 0) + (r.addedBytes ?? 0),
    Duration: r.durationMs,
    Error: r.error ?? null,
  }));
  return {
    Name: info.name,
    Status: info.status,
    RoleStatus: roleStatus,
    CreatedDateTime: info.createdDateTime.toISOString(),
    TimeTakenToCreate: info.completedDateTime.getTime() - info.createdDateTime.getTime(),
    BackupDataVersion: info.backupDataVersion,
    EncryptionCertThumbprint: cert?.id ?? null,
    EncryptionKeyId: key?.id ?? null,
    Size: roleStatus.reduce((n, r) => n + r.StoredSize, 0),
    IsCloudRecoveryReady: info.status === 'Succeeded',
    SharePath: sharePath,
    Progress: null,
  };
}

/** The exit code a backup that ran to its end leaves (SPEC section 8): 3 partly failed, 1 failed. */
export function exitCodeOf(record: Pick<BackupRecord, 'Status'>): ExitCode {
  return record.Status === 'PartialSucceeded' ? ExitCode.Partial : record.Status === 'Failed' ? ExitCode.Failure : ExitCode.Success;
}
