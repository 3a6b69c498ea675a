import type { Cmdlet } from '../src/host/cmdlet.js';
import type { ClearBackupConfigurationParameters } from './generated/parameters.js';
import { existsSync } from 'node:fs';
import { ConfigStore, defaultConfig } from '../src/config/store.js';
import { runJob } from '../src/engine/job.js';
import { backupLocation } from '../src/session/location.js';

/**
 * Resets the backup configuration to its defaults; the role catalog and the share's backups stay.
 * Refused (JobLockHeld) while a job runs.
 * A damaged configuration file is set aside, roles and all: that is the way out its error gives.
 * So is a lost seal.key (SealingKeyMissing): what it sealed is dropped, roles' passwords included.
 */
const clearBackupConfiguration: Cmdlet<ClearBackupConfigurationParameters> = async ({ home, shouldProcess, writeWarning }) => {
  const store = new ConfigStore(home);
  if (!(await shouldProcess(store.file, 'Reset the backup configuration to its defaults'))) return;
  // With seal.key lost (SealingKeyMissing recommends this command), the roles' database passwords
  // sealed with it open no more: they go too, or no secret could be sealed again.
  const keyLost = !store.hasSealingKey();
  const dropped: string[] = [];
  const clear = () =>
    store.update(
      (c) => {
        dropped.length = 0;
        const roles = c.roles.map((r) => {
          if (!keyLost || !r.databasePassword) return r;
          dropped.push(r.name);
          const { databasePassword: _lost, ...rest } = r;
          return rest;
        });
        return { ...defaultConfig(), roles };
      },
      { setAsideDamaged: true },
    );
  // Under the job lock, refused (JobLockHeld) while a job runs, as Set-BackupShare's change of the
  // share or the encryption is: a backup running now would lose the repository keys it just saved
  // (prune then deletes no packs until this machine has them again) and record its success into
  // the cleared configuration. On a fresh machine (no AZSBACKUP_HOME) no job runs, and the lock
  // would make the folder.
  const cleared = existsSync(home) ? await runJob(home, 'clear backup configuration', clear) : await clear();
  if (dropped.length)
    writeWarning(
      `The sealing key is lost, so the database password of ${dropped.join(', ')} is gone too: give it again with Register-InfrastructureRole -DatabasePassword.`,
    );
  return backupLocation(cleared);
};
export default clearBackupConfiguration;
