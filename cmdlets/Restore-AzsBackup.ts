import type { Cmdlet } from '../src/host/cmdlet.js';
import { ConfigStore } from '../src/config/store.js';
import { registeredRole } from '../src/engine/backup-job.js';
import { acquireJobLock } from '../src/engine/job.js';
import { runRestore } from '../src/engine/restore.js';
import { decryptionMaterial, openShare, shareAccess, shareParameters, type DecryptionParameters } from '../src/session/session.js';

/**
 * Restores all roles, or one with -RoleName, from a backup, in their recorded order; works on a
 * fresh machine given -Path, the credential and the decryption material.
 */
const restoreAzsBackup: Cmdlet = async ({ params, secretsFromEnvironment, home, progress, signal, shouldProcess, writeError, writeWarning, setExitCode }) => {
  const name = params.Name as string;
  const roleName = params.RoleName as string | undefined;
  const store = new ConfigStore(home);
  const access = shareAccess(store, shareParameters(params, secretsFromEnvironment));
  if (!(await shouldProcess(`${roleName ?? 'every role'} from backup ${name}`, 'Restore'))) return;
  const material = (await decryptionMaterial(params as DecryptionParameters))!;
  const lock = acquireJobLock(home, `restore ${name}`);
  try {
    const { results, warnings, error } = await runRestore({
      target: await openShare(access), name, material, roleName, progress, signal,
      registeredRole: (role) => registeredRole(store, role), allowUnauthenticated: params.AllowUnauthenticated === true,
    });
    for (const warning of warnings) writeWarning(warning);
    if (error) {
      setExitCode(error.exitCode);
      writeError(error);
    }
    return results;
  } finally {
    lock.release();
  }
};
export default restoreAzsBackup;
