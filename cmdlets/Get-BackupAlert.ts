import type { Cmdlet } from '../src/host/cmdlet.js';
import type { GetBackupAlertParameters } from './generated/parameters.js';
import { deliveryStatus } from '../src/alerts/alert.js';
import { AlertStore } from '../src/alerts/alerts.js';

/** Lists the alerts raised by backup jobs, active and closed, newest first, each with whether it reached the sinks. */
const getBackupAlert: Cmdlet<GetBackupAlertParameters> = async ({ params, home, writeWarning }) =>
  new AlertStore(home, {}, writeWarning)
    .list()
    .filter((a) => params.Status === undefined || a.Status === params.Status)
    .sort((a, b) => b.LastSeen.localeCompare(a.LastSeen))
    .map((a) => ({ ...a, DeliveryStatus: deliveryStatus(a) }));
export default getBackupAlert;
