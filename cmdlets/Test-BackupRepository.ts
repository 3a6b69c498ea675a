import type { Cmdlet } from '../src/host/cmdlet.js';
import type { TestBackupRepositoryParameters } from './generated/parameters.js';
import { AzsError } from '../src/errors.js';
import { ConfigStore } from '../src/config/store.js';
import { rememberedRepository } from '../src/engine/repository-access.js';
import { checkRepository } from '../src/engine/verify-repository.js';
import { runJob } from '../src/engine/job.js';
import { decryptionMaterial, openShare, shareAccess, shareParameters } from '../src/engine/share-access.js';

/**
 * Checks the share's whole repository (every pack once, the index, every backup), like
 * `restic check --read-data` with the key or the .pfx; -Repair writes a lost or damaged index anew.
 */
const testBackupRepository: Cmdlet<TestBackupRepositoryParameters> = async ({
  params,
  secretsFromEnvironment,
  home,
  progress,
  writeError,
  writeWarning,
  setExitCode,
  shouldProcess,
}) => {
  const store = new ConfigStore(home);
  const config = store.read();
  const access = shareAccess(store, shareParameters(params, secretsFromEnvironment), config);
  const target = await openShare(access);
  const material = await decryptionMaterial(params);
  const check = () =>
    checkRepository(
      target,
      access.path,
      {
        material,
        remembered: rememberedRepository(store, config),
        repair: params.Repair === true,
        confirmRepair: (what) => shouldProcess(access.path, what),
        allowUnauthenticated: params.AllowUnauthenticated === true,
      },
      progress,
    );
  // -Repair writes the index from the tables of contents it read and deletes the index files it
  // listed: under the job lock, so that no prune of this machine deletes a pack in between (the
  // new index would place chunks in it, and every backup deduplicating against them would fail).
  const result = params.Repair === true ? await runJob(home, 'repository repair', check) : await check();
  // The exit code first, so each error record says the code the command ends with.
  if (!result.IsValid) setExitCode(12);
  for (const p of result.Problems) {
    if (p.Severity === 'Warning') writeWarning(`${p.Kind}: ${p.Path}: ${p.Message}`);
    if (p.Severity !== 'Error') continue;
    writeError(
      new AzsError(`${p.Kind}: ${p.Path}: ${p.Message}`, {
        errorId: p.Kind,
        category: 'InvalidData',
        exitCode: 12,
        targetObject: p.Path,
        recommendedAction:
          'Do not rely on the backups named: take a new backup (Start-InfrastructureBackup), which stores missing or damaged chunks anew, ' +
          'and check the share for damage or tampering. Index problems alone are repaired with -Repair.',
      }),
    );
  }
  return result;
};
export default testBackupRepository;
