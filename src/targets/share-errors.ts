import { AzsError, ExitCode, type ErrorCategory, type ShareAlertType } from '../errors.js';
import { ReadFailure, type ReadLimit } from '../io/bounded-read.js';

/**
 * The share failures every target reports the same way, so the engine raises one alert type per
 * cause whatever the storage. Each carries the remediation an operator follows.
 */
const remediation: Record<ShareAlertType, string> = {
  ShareConnectivity:
    'Check that the file server is running and reachable from this machine (name resolution, routing, firewall allowing TCP to the SMB ' +
    'port), then run Test-BackupShare.',
  SharePath:
    'Check the backup path: the server, the share name and the folder must exist (create the folder if needed), then run ' +
    'Set-BackupShare with the corrected -Path.',
  ShareAuthentication:
    'Check the account name and password, that the account is not locked or expired, and that it has read and write permission on the ' +
    'share and folder; then run Set-BackupShare with the corrected -Credential.',
  ShareCapacity:
    'Free space on the share or enlarge it, or lower the retention period (Set-BackupShare -BackupRetentionPeriodInDays), then run ' +
    'Invoke-BackupPrune and Test-BackupShare.',
};

const categoryOf: Record<ShareAlertType, ErrorCategory> = {
  ShareConnectivity: 'ConnectionError',
  SharePath: 'ObjectNotFound',
  ShareAuthentication: 'AuthenticationError',
  ShareCapacity: 'QuotaExceeded',
};

const exitOf: Record<ShareAlertType, ExitCode> = {
  ShareConnectivity: ExitCode.NotFound,
  SharePath: ExitCode.NotFound,
  ShareAuthentication: ExitCode.Authentication,
  ShareCapacity: ExitCode.Capacity,
};

export const shareErrorIds: Record<ShareAlertType, string> = {
  ShareConnectivity: 'ShareUnreachable',
  SharePath: 'SharePathNotFound',
  ShareAuthentication: 'ShareAccessDenied',
  ShareCapacity: 'ShareCapacityExceeded',
};

export function shareError(
  alertType: ShareAlertType,
  message: string,
  opts: { targetObject?: unknown; cause?: unknown; category?: ErrorCategory; errorId?: string; recommendedAction?: string } = {},
): AzsError {
  return new AzsError(message, {
    errorId: opts.errorId ?? shareErrorIds[alertType],
    category: opts.category ?? categoryOf[alertType],
    exitCode: exitOf[alertType],
    alertType,
    targetObject: opts.targetObject,
    recommendedAction: opts.recommendedAction ?? remediation[alertType],
    cause: opts.cause,
  });
}

export function notFound(location: string, p: string): AzsError {
  return new AzsError(`'${p}' does not exist on ${location}.`, {
    errorId: 'TargetObjectNotFound',
    category: 'ObjectNotFound',
    targetObject: p,
    recommendedAction: 'Check the name; list the backups with Get-InfrastructureBackup.',
  });
}

export function alreadyExists(location: string, p: string): AzsError {
  return new AzsError(`'${p}' already exists on ${location}.`, {
    errorId: 'TargetObjectExists',
    category: 'ResourceExists',
    targetObject: p,
    recommendedAction: 'Remove or rename the existing entry, then retry.',
  });
}

export const SYMBOLIC_LINK_ID = 'ShareSymbolicLink';

/**
 * A symbolic link met below a local target's root, where AzsBackup never makes one: followed, it
 * could lead a prune to delete, or a backup to write, outside the share (`link` is the linked part
 * of `p`).
 */
export function symbolicLinkOnShare(location: string, p: string, link: string): AzsError {
  return new AzsError(
    `'${link}' on ${location} is a symbolic link; AzsBackup follows none below the backup folder, so '${p}' was not used.`,
    {
      errorId: SYMBOLIC_LINK_ID,
      category: 'SecurityError',
      exitCode: ExitCode.Integrity,
      alertType: 'SharePath',
      targetObject: link,
      recommendedAction:
        `AzsBackup never makes a symbolic link on the share: find out who replaced '${link}' on ${location} with one and what it points at, ` +
        'then remove the link and put back the folder or file it replaced (or remove it if nothing should be there).',
    },
  );
}

/** What readSmallFiles reads at most of one file unless told otherwise (catalog documents are KB). */
export const SMALL_FILE_MAX_BYTES = 2 * 1024 * 1024;

/** The limit of a small file read from a share: refused files are the share's damage, not a wrong parameter. */
export function shareFileLimit(location: string, maxBytes: number): ReadLimit {
  return {
    what: `file on ${location}`,
    maxBytes,
    exitCode: ExitCode.Integrity,
    remediation:
      'AzsBackup never writes such a file: check the share for damage or tampering, and remove or replace the file (Invoke-BackupPrune ' +
      'and Remove-InfrastructureBackup remove a backup that cannot be read).',
  };
}

/** A bounded read's refusal that is the file's own fault (too large, not a file), kept as the entry's result. */
export function isRefusedFile(e: unknown): e is AzsError {
  return e instanceof AzsError && (e.errorId === ReadFailure.TooLarge || e.errorId === ReadFailure.NotAFile);
}
