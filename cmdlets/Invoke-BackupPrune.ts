import type { Cmdlet } from '../src/host/cmdlet.js';
import { ConfigStore } from '../src/config/store.js';
import { acquireJobLock } from '../src/engine/job.js';
import { JobStore } from '../src/engine/job-store.js';
import { runPrune } from '../src/engine/prune.js';
import { openShare, shareAccess } from '../src/session/session.js';

/** Applies retention and removes incomplete leftovers; -DryRun only lists what it would delete. */
const invokeBackupPrune: Cmdlet = async ({ params, home, shouldProcess }) => {
  const store = new ConfigStore(home);
  const config = store.read();
  const access = shareAccess(store, {}, config);
  const dryRun = Boolean(params.DryRun) || !(await shouldProcess(access.path, 'Remove expired backups and leftovers'));
  const lock = acquireJobLock(home, 'prune');
  try {
    return await runPrune(await openShare(access), {
      retentionPeriodInDays: config.scheduler.retentionPeriodInDays, dryRun, ownBackups: new JobStore(home).names(),
    });
  } finally {
    lock.release();
  }
};
export default invokeBackupPrune;
