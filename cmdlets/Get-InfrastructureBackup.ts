import type { Cmdlet } from '../src/host/cmdlet.js';
import type { GetInfrastructureBackupParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { getBackup, listBackups, noBackupFolderHint } from '../src/engine/backup-listing.js';
import { openShare, shareAccess, shareParameters } from '../src/engine/share-access.js';

/** Lists the backups on the share, newest first (-Top, -Skip), or gets one (-Name) with its progress. */
const getInfrastructureBackup: Cmdlet<GetInfrastructureBackupParameters> = async ({
  params,
  secretsFromEnvironment,
  home,
  writeWarning,
}) => {
  const store = new ConfigStore(home);
  const access = shareAccess(store, shareParameters(params, secretsFromEnvironment));
  const target = await openShare(access);
  if (params.Name !== undefined) return getBackup(target, access.path, home, params.Name, writeWarning);
  const skip = params.Skip ?? 0;
  const all = await listBackups(target, access.path, home, writeWarning);
  // A path typed by hand that lists nothing may be one folder off.
  if (all.length === 0 && params.Path !== undefined) {
    const hint = await noBackupFolderHint(target, access.path);
    if (hint) writeWarning(hint, access.path);
  }
  return all.slice(skip, params.Top === undefined ? undefined : skip + params.Top);
};
export default getInfrastructureBackup;
