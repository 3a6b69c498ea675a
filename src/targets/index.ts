import { AzsError } from '../errors.js';
import { LocalFolderTarget } from './local.js';
import { parseShareLocation } from './location.js';
import { SmbTarget, type SmbCredential } from './smb.js';
import type { Target } from './target.js';

export type { Target, TargetEntry, FreeSpace } from './target.js';
export { parseShareLocation, parseUserName, type ShareLocation } from './location.js';
export { LocalFolderTarget } from './local.js';
export { SmbTarget, type SmbCredential } from './smb.js';
export { checkShare, assertShareUsable, type ShareCheckResult, type ShareCheckStep } from './share-check.js';
export { isPartialName, PARTIAL_MARKER } from './paths.js';

/**
 * The target for a backup path: a local folder, or an SMB share reached with `credential`.
 * A local folder ignores the credential: the service account's own rights apply.
 */
export function openTarget(path: string, credential?: SmbCredential, privateDir?: string): Target {
  const location = parseShareLocation(path);
  if (location.kind === 'local') return new LocalFolderTarget(location.path);
  if (!credential || credential.userName.trim() === '') {
    throw new AzsError(`The share ${location.display} needs a credential, and none was given.`, {
      errorId: 'ShareCredentialMissing',
      category: 'InvalidArgument',
      targetObject: location.display,
      recommendedAction: 'Give the account that may write the share: Set-BackupShare -Path <path> -Credential DOMAIN\\user.',
      commandLineHint: 'The password is read from standard input (-Credential -), AZSBACKUP_PASSWORD or a prompt.',
    });
  }
  return new SmbTarget(location, credential, { privateDir });
}
