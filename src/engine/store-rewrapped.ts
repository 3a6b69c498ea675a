import { AzsError } from '../errors.js';
import { recipientsMissing, type EncryptFor } from '../crypto/recipient.js';
import { readRepositoryConfig } from '../repository/repository-config.js';
import type { Target, TargetEntry } from '../targets/target.js';
import type { OpenRepository } from './repository-access.js';

/**
 * Throws unless the share's store is still the one a backup adds to, with its master key wrapped
 * for every recipient the backup's data key is wrapped for. Update-BackupEncryption on another
 * machine (whose job lock does not hold this one off) may have wrapped it for other material alone
 * while the backup ran: the backup's data key then opens with our material only, and the master
 * key its chunks are under with theirs only, so no material restores it. A backup checks once it
 * lists: the re-wrap, which lists the backups again after its write, sees every backup that listed
 * before that write, and this check sees every write before it, so one of the two sees the other.
 */
export async function storeStillWrappedFor(
  target: Target,
  repository: OpenRepository,
  recipients: readonly EncryptFor[],
  /** config.xml's entry in a listing made just before (null: it had none), which spares a request; else a stat. */
  listed?: TargetEntry | null,
): Promise<void> {
  const config = await readRepositoryConfig(target, repository.layout, listed);
  const missing = config?.id === repository.id ? recipientsMissing(config.recipients, recipients) : undefined;
  if (missing?.length === 0) return;
  throw storeRewrapped(missing ?? [], target.location);
}

function storeRewrapped(missing: string[], location: string): AzsError {
  const what = missing.length
    ? `its master key is no longer wrapped for ${missing.join(', ')}, which this backup is encrypted for (Update-BackupEncryption on another machine)`
    : 'it was removed or replaced';
  return new AzsError(
    `The deduplicating store on ${location} (AzsRepository/config.xml) changed while this backup ran: ${what}. The backup would have opened with no material, so it was removed from the share again.`,
    {
      errorId: 'RepositoryRewrapped',
      category: 'InvalidOperation',
      recommendedAction:
        'Run Start-InfrastructureBackup again (a full copy, until this machine is set up with the material the store is wrapped for now: ' +
        'Set-BackupShare as on the machine that re-wrapped it). Re-wrap from one machine while no other backs up to the share.',
    },
  );
}
