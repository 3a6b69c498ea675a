import type { Cmdlet } from '../src/host/cmdlet.js';
import type { TestBackupShareParameters } from './generated/parameters.js';
import { AzsError } from '../src/errors.js';
import { ConfigStore } from '../src/config/store.js';
import { requiredCapacity } from '../src/session/capacity.js';
import { openShare, shareAccess, shareParameters } from '../src/engine/share-access.js';
import { checkShare } from '../src/targets/share-check.js';

/** Reaches, authenticates, writes, reads and deletes a probe, and compares free space with what retention needs. */
const testBackupShare: Cmdlet<TestBackupShareParameters> = async ({ params, secretsFromEnvironment, home, writeError, setExitCode }) => {
  const store = new ConfigStore(home);
  const config = store.read();
  const access = shareAccess(store, shareParameters(params, secretsFromEnvironment), config);
  const result = await checkShare(await openShare(access), { requiredBytes: await requiredCapacity(config) });
  // Get-BackupConfiguration shows the configured share's free space as last measured.
  const available = result.AvailableCapacity;
  if (available !== null && config.share && access.path === config.share.path)
    await store.update((c) => ({ ...c, shareCapacity: { path: access.path, available, measuredAt: new Date().toISOString() } }));
  if (result.Error) {
    // The error names the step that failed: a missing folder (Open) is not a refused account (Authenticate).
    const e = result.Error;
    const step = result.Steps.at(-1)!.Name;
    setExitCode(e.exitCode);
    writeError(
      new AzsError(`Step ${step} failed: ${e.message}`, {
        errorId: e.errorId,
        category: e.category,
        exitCode: e.exitCode,
        targetObject: e.targetObject,
        recommendedAction: e.recommendedAction,
        alertType: e.alertType,
        cause: e,
      }),
    );
  }
  const { Error: _error, AlertType: _alert, ...shown } = result;
  return shown;
};
export default testBackupShare;
