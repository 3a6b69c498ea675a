import type { Cmdlet } from '../src/host/cmdlet.js';
import type { InvokeBackupPruneParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { futureDatedWarning, pruneJob } from '../src/engine/prune.js';
import { shareAccess } from '../src/engine/share-access.js';

/** Applies retention, removes incomplete leftovers and collects the repository; -DryRun only lists what it would delete. */
const invokeBackupPrune: Cmdlet<InvokeBackupPruneParameters> = async ({ params, home, shouldProcess, writeWarning }) => {
  const store = new ConfigStore(home);
  const config = store.read();
  const access = shareAccess(store, {}, config);
  const dryRun = Boolean(params.DryRun) || !(await shouldProcess(access.path, 'Remove expired backups and leftovers'));
  const result = await pruneJob(home, access, { retentionPeriodInDays: config.scheduler.retentionPeriodInDays, dryRun });
  for (const folder of result.PathsInFuture) writeWarning(futureDatedWarning(folder), folder);
  if (result.RepositoryWarning) writeWarning(result.RepositoryWarning, access.path);
  return result;
};
export default invokeBackupPrune;
