import type { Cmdlet } from '../src/host/cmdlet.js';
import type { RemoveInfrastructureBackupParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { removeBackupEverywhere } from '../src/engine/remove.js';
import { openShare, shareAccess, shareParameters } from '../src/engine/share-access.js';

/** Deletes one backup; with -PassThru returns it, marked Deleted. */
const removeInfrastructureBackup: Cmdlet<RemoveInfrastructureBackupParameters> = async ({
  params,
  secretsFromEnvironment,
  home,
  shouldProcess,
}) => {
  const access = shareAccess(new ConfigStore(home), shareParameters(params, secretsFromEnvironment));
  const name = params.Name;
  if (!(await shouldProcess(`backup ${name} on ${access.path}`, 'Remove'))) return;
  const removed = await removeBackupEverywhere(await openShare(access), access.path, home, name);
  return params.PassThru ? removed : undefined;
};
export default removeInfrastructureBackup;
