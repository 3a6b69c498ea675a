import type { Cmdlet } from '../src/host/cmdlet.js';
import type { InvokeBackupPruneParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { pruneJob } from '../src/engine/prune.js';
import { shareAccess } from '../src/engine/share-access.js';

/** Applies retention and removes incomplete leftovers; -DryRun only lists what it would delete. */
const invokeBackupPrune: Cmdlet<InvokeBackupPruneParameters> = async ({ params, home, shouldProcess }) => {
  const store = new ConfigStore(home);
  const config = store.read();
  const access = shareAccess(store, {}, config);
  const dryRun = Boolean(params.DryRun) || !(await shouldProcess(access.path, 'Remove expired backups and leftovers'));
  return pruneJob(home, access, { retentionPeriodInDays: config.scheduler.retentionPeriodInDays, dryRun });
};
export default invokeBackupPrune;
