import type { Cmdlet } from '../src/host/cmdlet.js';
import type { ClearBackupConfigurationParameters } from './generated/parameters.js';
import { ConfigStore, defaultConfig } from '../src/config/store.js';
import { backupLocation } from '../src/session/location.js';

/**
 * Resets the backup configuration to its defaults; the role catalog and the share's backups stay.
 * A damaged configuration file is set aside, roles and all: that is the way out its error gives.
 */
const clearBackupConfiguration: Cmdlet<ClearBackupConfigurationParameters> = async ({ home, shouldProcess }) => {
  const store = new ConfigStore(home);
  if (!(await shouldProcess(store.file, 'Reset the backup configuration to its defaults'))) return;
  const cleared = await store.update((c) => ({ ...defaultConfig(), roles: c.roles }), { setAsideDamaged: true });
  return backupLocation(cleared);
};
export default clearBackupConfiguration;
