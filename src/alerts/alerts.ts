import { randomUUID } from 'node:crypto';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { withLock } from '../config/file-lock.js';
import { homeError, makeHome } from '../config/home-folder.js';
import { ExitCode, isAzsError } from '../errors.js';
import { writeFileWhole } from '../fs/durable-write.js';
import { fileError, isMissingFile, readFileBoundedSync, ReadFailure } from '../io/bounded-read.js';
import type { Alert, AlertType } from './alert.js';
import { notifySinks, type AlertSinks } from './sinks.js';

export type { Alert, AlertType } from './alert.js';
export { shareAlertTypes } from './alert.js';

/**
 * Alerts raised by jobs (SPEC section 7). One active alert per type: a repeat refreshes LastSeen.
 * An alert closes itself when a later job proves its cause gone.
 */

export const alertCatalog: Record<AlertType, { severity: Alert['Severity']; title: string; remediation: string[] }> = {
  ShareCapacity: {
    severity: 'Critical',
    title: 'The backup share is out of capacity',
    remediation: [
      'Free space on the share, or grow the volume that holds it.',
      'Lower the retention period (Set-BackupShare -BackupRetentionPeriodInDays) and run Invoke-BackupPrune.',
      'Run Test-BackupShare to confirm there is room for the retained backups, then Start-InfrastructureBackup.',
    ],
  },
  ShareConnectivity: {
    severity: 'Critical',
    title: 'The backup share cannot be reached',
    remediation: [
      'Check that the file server is running and its SMB service accepts connections (for a blob container: that the storage endpoint ' +
        'answers and is not throttling the account).',
      'Check the network path and firewalls between this machine and the server (TCP port 445, or the port in the smb:// path; HTTPS ' +
        'for a blob container).',
      'Run Test-BackupShare, then Start-InfrastructureBackup.',
    ],
  },
  SharePath: {
    severity: 'Critical',
    title: 'The backup share path does not resolve',
    remediation: [
      'Check the server, share and folder names in the path, or the account and container of a blob URL (Get-BackupConfiguration).',
      'Create the share, folder or container, or set the right one with Set-BackupShare -Path.',
      'Run Test-BackupShare, then Start-InfrastructureBackup.',
    ],
  },
  ShareAuthentication: {
    severity: 'Critical',
    title: 'The backup share refused the credentials',
    remediation: [
      'Check that the account is enabled, its password has not expired, and it has write access to the share; for a blob ' +
        'container, that the storage account key is current, or that the SAS token has not expired and allows read, add, create, ' +
        'write, delete and list.',
      'Update the credential with Set-BackupShare -Credential (for a blob container, -StorageAccountKey or -SasToken).',
      'Run Test-BackupShare, then Start-InfrastructureBackup.',
    ],
  },
  BackupGeneral: {
    severity: 'Warning',
    title: 'A backup job failed',
    remediation: [
      'Read the error of each failed role: Get-InfrastructureBackup -Name <backup> | Select-Object -ExpandProperty RoleStatus.',
      "Fix the role's source (folder, database or export command) named in the error.",
      'Run Start-InfrastructureBackup again.',
    ],
  },
  CertificateExpiring: {
    severity: 'Warning',
    title: 'The backup encryption certificate expires soon',
    remediation: [
      'Make a new certificate with New-EncryptionKey -Certificate and keep its .pfx safe.',
      'Configure it with Set-BackupShare -EncryptionCertPath, in place of the expiring one beside the certificates you keep, and give its .pfx once.',
      'Re-wrap retained backups for it with Update-BackupEncryption, or keep the old .pfx to restore them.',
    ],
  },
  BackupOverdue: {
    severity: 'Warning',
    title: 'No backup succeeded for twice the backup frequency',
    remediation: [
      'Check the scheduler (a systemd timer or cron job running Invoke-BackupScheduler).',
      'Look at the other active alerts (Get-BackupAlert) for the cause of failed backups.',
      'Run Start-InfrastructureBackup.',
    ],
  },
};

/** Alerts are a few hundred bytes each and one per type stays active: megabytes are not ours. */
export const MAX_ALERT_STATE_BYTES = 4 * 1024 * 1024;

/**
 * How much history of closed alerts is kept: the oldest go as the store grows past it, so years of
 * a flapping role's alerts never take the file to the size it is read at. A quarter of that size.
 */
export const CLOSED_ALERT_HISTORY_BYTES = MAX_ALERT_STATE_BYTES / 4;

/** Drops the oldest closed alerts until the closed ones fit CLOSED_ALERT_HISTORY_BYTES; active ones all stay. */
function trimHistory(alerts: Alert[]): void {
  const closed = alerts
    .filter((a) => a.Status !== 'Active')
    .sort((a, b) => (b.ClosedTime ?? b.LastSeen).localeCompare(a.ClosedTime ?? a.LastSeen));
  let kept = 0;
  const dropped = new Set<Alert>();
  for (const a of closed) {
    kept += Buffer.byteLength(JSON.stringify(a, null, 4));
    if (kept > CLOSED_ALERT_HISTORY_BYTES) dropped.add(a);
  }
  if (dropped.size === 0) return;
  const left = alerts.filter((a) => !dropped.has(a));
  alerts.splice(0, alerts.length, ...left);
}

export class AlertStore {
  /** `warn` hears of a damaged state file, which is set aside and replaced by a fresh one. */
  constructor(
    private readonly home: string,
    private readonly sinks: AlertSinks = {},
    private readonly warn: (message: string, target: string) => void = () => {},
  ) {}

  private get file(): string {
    return join(this.home, 'alerts.json');
  }

  list(): Alert[] {
    let text: string;
    try {
      text = readFileBoundedSync(this.file, {
        what: 'alert state file',
        maxBytes: MAX_ALERT_STATE_BYTES,
        exitCode: ExitCode.Failure,
        remediation: `Move ${this.file} aside; a fresh one is started.`,
      }).toString('utf8');
    } catch (e) {
      if (isMissingFile(e)) return [];
      if (isAzsError(e) && e.errorId === ReadFailure.Unreadable) throw e;
      return this.setAside(e instanceof Error ? e.message : String(e));
    }
    try {
      const alerts: unknown = JSON.parse(text);
      if (!Array.isArray(alerts) || alerts.some((a) => typeof a !== 'object' || a === null || typeof (a as Alert).LastSeen !== 'string')) {
        throw new Error('it is not a list of alerts');
      }
      return alerts as Alert[];
    } catch (e) {
      return this.setAside(`it is not valid: ${(e as Error).message}`);
    }
  }

  /**
   * A damaged state file is kept, renamed, for whoever wants to look into it; alerts start afresh,
   * and the operator is told (never silently: an alert lost unseen is a failure unseen).
   */
  private setAside(why: string): Alert[] {
    const aside = `${this.file}.corrupt-${new Date().toISOString().replace(/[-:.]/g, '')}`;
    try {
      renameSync(this.file, aside);
      this.warn(
        `The alert state file ${this.file} was damaged (${why}); it was set aside as ${aside} and alerts start afresh. Alerts it held are not shown.`,
        this.file,
      );
    } catch (e) {
      if (isMissingFile(fileError(e, this.file, { what: 'alert state file', remediation: '' }))) return this.list();
      throw homeError(e, this.home);
    }
    return [];
  }

  /** Read-modify-write under the alerts lock; `fn` returning false means it changed nothing, and nothing is written. */
  private async change(fn: (alerts: Alert[]) => boolean | undefined): Promise<void> {
    makeHome(this.home);
    await withLock(join(this.home, 'alerts.lock'), 'alerts', () => {
      const alerts = this.list();
      if (fn(alerts) === false) return;
      trimHistory(alerts);
      try {
        writeFileWhole(this.file, JSON.stringify(alerts, null, 2), { mode: 0o600, replace: true });
      } catch (e) {
        throw homeError(e, this.home);
      }
    });
  }

  async raise(type: AlertType, description: string, backupName?: string): Promise<Alert> {
    const now = new Date().toISOString();
    let raised!: Alert;
    let send = false;
    await this.change((alerts) => {
      const active = alerts.find((a) => a.AlertType === type && a.Status === 'Active');
      if (active) {
        active.LastSeen = now;
        active.Description = description;
        active.BackupName = backupName ?? active.BackupName;
        raised = active;
        // A repeat is not sent again, unless no sending of the alert has succeeded yet: it failed,
        // or the process that raised it died before sending (DeliveryError never set).
        send = active.DeliveryError !== null;
        return true;
      }
      const def = alertCatalog[type];
      raised = {
        Id: randomUUID(),
        AlertType: type,
        Severity: def.severity,
        Title: def.title,
        Description: description,
        Remediation: def.remediation,
        Status: 'Active',
        FirstSeen: now,
        LastSeen: now,
        ClosedTime: null,
        BackupName: backupName ?? null,
      };
      alerts.push(raised);
      send = true;
      return true;
    });
    if (send) await this.deliver([raised]);
    return raised;
  }

  /**
   * Sends each alert to the sinks, side by side (the job may hold its lock meanwhile), and notes
   * on it whether that worked: a broken webhook or command would otherwise go unnoticed until the
   * alert it failed to deliver mattered.
   */
  private async deliver(alerts: Alert[]): Promise<void> {
    if (!this.sinks.command?.length && !this.sinks.webhookUri) return;
    const outcomes = await Promise.all(alerts.map(async (a) => ({ id: a.Id, failures: await notifySinks(a, this.sinks) })));
    await this.change((all) => {
      for (const { id, failures } of outcomes) {
        const a = all.find((x) => x.Id === id);
        if (a) a.DeliveryError = failures.length ? failures.join('; ') : null;
      }
      return true;
    });
  }

  async close(types: readonly AlertType[]): Promise<void> {
    // Most calls close nothing (every successful backup, tick and listing): then no lock is taken,
    // and no home made for a listing on a machine never configured.
    if (!this.list().some((a) => a.Status === 'Active' && types.includes(a.AlertType))) return;
    const now = new Date().toISOString();
    const closed: Alert[] = [];
    await this.change((alerts) => {
      for (const a of alerts) {
        if (a.Status === 'Active' && types.includes(a.AlertType)) {
          a.Status = 'Closed';
          a.ClosedTime = now;
          closed.push(a);
        }
      }
      // Every successful backup closes what it proved gone; most of the time nothing was open,
      // and writing the file again (two fsyncs) would change nothing.
      return closed.length > 0;
    });
    await this.deliver(closed);
  }
}
