import type { Cmdlet } from '../src/host/cmdlet.js';
import type { GetBackupAlertParameters } from './generated/parameters.js';
import { deliveryStatus } from '../src/alerts/alert.js';
import { AlertStore } from '../src/alerts/alerts.js';
import { ConfigStore } from '../src/config/store.js';
import { reviewTimedAlerts } from '../src/engine/scheduler.js';
import { isAzsError } from '../src/errors.js';

/**
 * Lists the alerts raised by backup jobs, active and closed, newest first, each with whether it
 * reached the sinks. The alerts time raises (BackupOverdue, CertificateExpiring) are reviewed
 * first, as a scheduler tick does: with the timer that runs the ticks gone, nothing else would.
 */
const getBackupAlert: Cmdlet<GetBackupAlertParameters> = async ({ params, home, writeWarning }) => {
  try {
    const config = new ConfigStore(home).read();
    await reviewTimedAlerts(config, new AlertStore(home, config.alertSinks, writeWarning));
  } catch (e) {
    if (!isAzsError(e)) throw e;
    // The alerts already raised are still worth listing; the configuration's own error says what to do.
    writeWarning(`BackupOverdue and CertificateExpiring were not reviewed: ${e.message}`, home);
  }
  return new AlertStore(home, {}, writeWarning)
    .list()
    .filter((a) => params.Status === undefined || a.Status === params.Status)
    .sort((a, b) => b.LastSeen.localeCompare(a.LastSeen))
    .map((a) => ({ ...a, DeliveryStatus: deliveryStatus(a) }));
};
export default getBackupAlert;
