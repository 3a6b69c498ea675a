import type { Cmdlet } from '../src/host/cmdlet.js';
import type { GetBackupConfigurationParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { backupLocation } from '../src/session/location.js';

/** Shows the backup location, its encryption and its schedule; secrets always come back empty. */
const getBackupConfiguration: Cmdlet<GetBackupConfigurationParameters> = async ({ home }) => backupLocation(new ConfigStore(home).read());
export default getBackupConfiguration;
