import { ConfigStore } from '../config/store.js';
import { openShare, type ShareAccess } from './share-access.js';
import { registeredRole } from './backup-job.js';
import { runJob } from './job.js';
import { privateDirOf } from '../process/private-dir.js';
import { roomForRestore, runRestore, type RestoreOutcome, type RestoreRequest } from './restore.js';
import type { RoomOnFileSystem } from './restore-room.js';

/**
 * A restore as a job (Restore-AzsBackup): under the job lock, from the share `access` reaches,
 * following this machine's registration of a role where it has one.
 */
export interface RestoreJobRequest extends Omit<RestoreRequest, 'target' | 'registeredRole' | 'privateDir'> {
  home: string;
  access: ShareAccess;
}

export async function restoreJob({ home, access, ...request }: RestoreJobRequest): Promise<RestoreOutcome> {
  const store = new ConfigStore(home);
  const outcome = await runJob(home, `restore ${request.name}`, async () =>
    runRestore({
      ...request,
      target: await openShare(access),
      registeredRole: (role) => registeredRole(store, role),
      privateDir: privateDirOf(home),
    }),
  );
  return { ...outcome, warnings: [...outcome.warnings, ...notBackedUpHere(store, access.path, outcome)] };
}

/** -WhatIf: the room the restore would need on each file system, and has; reads the backup, changes nothing. */
export async function restoreRoomJob({ home, access, ...request }: RestoreJobRequest): Promise<RoomOnFileSystem[]> {
  const store = new ConfigStore(home);
  return roomForRestore({ ...request, target: await openShare(access), registeredRole: (role) => registeredRole(store, role) });
}

/**
 * What a redeployed machine lacks for its next backup once roles are back: a share (none is made
 * by a restore, which reads the one it is given) and the restored roles' registrations (a restore
 * follows the backup's record of a role without registering it).
 */
function notBackedUpHere(store: ConfigStore, sharePath: string, { results }: RestoreOutcome): string[] {
  const restored = results.filter((r) => r.Status === 'Succeeded');
  if (restored.length === 0) return [];
  const warnings: string[] = [];
  if (!store.read().share) {
    warnings.push(
      `No backup share is configured on this machine, so nothing will back up what was restored: run Set-BackupShare -Path ${sharePath} ` +
        'with the credential and the encryption certificate (-EncryptionCertPath) or key, and turn the scheduler on with ' +
        '-IsBackupSchedulerEnabled $true (OPERATIONS.md, Restore on a redeployed machine).',
    );
  }
  const unregistered = restored.filter((r) => r.DefinitionSource === 'Backup').map((r) => r.RoleName);
  if (unregistered.length > 0) {
    const one = unregistered.length === 1;
    warnings.push(
      `Role${one ? '' : 's'} ${unregistered.join(', ')} ${one ? 'is' : 'are'} not registered on this machine, so backups leave ` +
        `${one ? 'it' : 'them'} out: register ${one ? 'it' : 'each'} again with Register-InfrastructureRole, with the provider and ` +
        `destination this restore lists and the restore order ${one ? 'it' : 'they'} had.`,
    );
  }
  return warnings;
}
