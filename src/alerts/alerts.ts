import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withLock } from '../config/file-lock.js';
import { notifySinks, type AlertSinks } from './sinks.js';

/**
 * Alerts raised by jobs (SPEC section 7). One active alert per type: a repeat refreshes LastSeen.
 * An alert closes itself when a later job proves its cause gone.
 */

export type AlertType =
  | 'ShareCapacity'
  | 'ShareConnectivity'
  | 'SharePath'
  | 'ShareAuthentication'
  | 'BackupGeneral'
  | 'CertificateExpiring'
  | 'BackupOverdue';

export const shareAlertTypes: readonly AlertType[] = ['ShareCapacity', 'ShareConnectivity', 'SharePath', 'ShareAuthentication'];

export interface Alert {
  Id: string;
  AlertType: AlertType;
  Severity: 'Critical' | 'Warning';
  Title: string;
  Description: string;
  Remediation: string[];
  Status: 'Active' | 'Closed';
  FirstSeen: string;
  LastSeen: string;
  ClosedTime: string | null;
  BackupName: string | null;
  /** Why the last sending of it to a sink (command, webhook) failed; null once one succeeds. */
  DeliveryError?: string | null;
}

const catalog: Record<AlertType, { severity: Alert['Severity']; title: string; remediation: string[] }> = {
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
      'Check that the file server is running and its SMB service accepts connections (for a blob container: that the storage endpoint answers and is not throttling the account).',
      'Check the network path and firewalls between this machine and the server (TCP port 445, or the port in the smb:// path; HTTPS for a blob container).',
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
      'Check that the account is enabled, its password has not expired, and it has write access to the share; for a blob container, that the storage account key is current, or that the SAS token has not expired and allows read, add, create, write, delete and list.',
      'Update the credential with Set-BackupShare -Credential (for a blob container, -StorageAccountKey or -SasToken).',
      'Run Test-BackupShare, then Start-InfrastructureBackup.',
    ],
  },
  BackupGeneral: {
    severity: 'Warning',
    title: 'A backup job failed',
    remediation: [
      'Read the error of each failed role: Get-InfrastructureBackup -Name <backup> | Select-Object -ExpandProperty RoleStatus.',
      'Fix the role\'s source (folder, database or export command) named in the error.',
      'Run Start-InfrastructureBackup again.',
    ],
  },
  CertificateExpiring: {
    severity: 'Warning',
    title: 'The backup encryption certificate expires soon',
    remediation: [
      'Make a new certificate with New-EncryptionKey -Certificate and keep its .pfx safe.',
      'Configure it with Set-BackupShare -EncryptionCertPath.',
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

export class AlertStore {
  constructor(private readonly home: string, private readonly sinks: AlertSinks = {}) {}

  private get file(): string {
    return join(this.home, 'alerts.json');
  }

  list(): Alert[] {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as Alert[];
    } catch {
      return [];
    }
  }

  private async change(fn: (alerts: Alert[]) => void): Promise<void> {
    mkdirSync(this.home, { recursive: true, mode: 0o700 });
    await withLock(join(this.home, 'alerts.lock'), 'alerts', () => {
      const alerts = this.list();
      fn(alerts);
      const tmp = `${this.file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(alerts, null, 2), { mode: 0o600 });
      renameSync(tmp, this.file);
    });
  }

  async raise(type: AlertType, description: string, backupName?: string): Promise<Alert> {
    const now = new Date().toISOString();
    let raised!: Alert;
    let isNew = false;
    await this.change((alerts) => {
      const active = alerts.find((a) => a.AlertType === type && a.Status === 'Active');
      if (active) {
        active.LastSeen = now;
        active.Description = description;
        active.BackupName = backupName ?? active.BackupName;
        raised = active;
        return;
      }
      const def = catalog[type];
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
      isNew = true;
    });
    if (isNew) await this.deliver([raised]);
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
    });
  }

  async close(types: readonly AlertType[]): Promise<void> {
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
    });
    await this.deliver(closed);
  }
}
