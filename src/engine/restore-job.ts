import { ConfigStore } from '../config/store.js';
import { openShare, type ShareAccess } from './share-access.js';
import { registeredRole } from './backup-job.js';
import { runJob } from './job.js';
import { privateDirOf } from '../process/private-dir.js';
import { runRestore, type RestoreOutcome, type RestoreRequest } from './restore.js';

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
  return runJob(home, `restore ${request.name}`, async () =>
    runRestore({
      ...request,
      target: await openShare(access),
      registeredRole: (role) => registeredRole(store, role),
      privateDir: privateDirOf(home),
    }),
  );
}
