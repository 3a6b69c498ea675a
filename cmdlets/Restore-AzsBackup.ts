import type { Cmdlet } from '../src/host/cmdlet.js';
import type { RestoreAzsBackupParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { restoreJob } from '../src/engine/restore-job.js';
import { decryptionMaterial, shareAccess, shareParameters } from '../src/engine/share-access.js';

/**
 * Restores all roles, or one with -RoleName, from a backup, in their recorded order; works on a
 * fresh machine given -Path, the credential and the decryption material.
 */
const restoreAzsBackup: Cmdlet<RestoreAzsBackupParameters> = async ({
  params,
  secretsFromEnvironment,
  home,
  progress,
  signal,
  shouldProcess,
  writeError,
  writeWarning,
  setExitCode,
}) => {
  const { Name: name, RoleName: roleName } = params;
  const access = shareAccess(new ConfigStore(home), shareParameters(params, secretsFromEnvironment));
  if (!(await shouldProcess(`${roleName ?? 'every role'} from backup ${name}`, 'Restore'))) return;
  const material = (await decryptionMaterial(params))!;
  const { results, warnings, error } = await restoreJob({
    home,
    access,
    name,
    material,
    roleName,
    progress,
    signal,
    allowUnauthenticated: params.AllowUnauthenticated === true,
  });
  for (const warning of warnings) writeWarning(warning);
  if (error) {
    setExitCode(error.exitCode);
    writeError(error);
  }
  return results;
};
export default restoreAzsBackup;
