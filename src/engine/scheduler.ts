import { AlertStore } from '../alerts/alerts.js';
import { lastSuccessCounted } from '../config/schedule.js';
import { ConfigStore, type StoredConfig } from '../config/store.js';
import type { ProgressReporter } from '../progress.js';
import { shareAccess } from './share-access.js';
import { runBackupJob, type BackupJobOptions } from './backup-job.js';
import type { BackupOutcome } from './backup.js';
import { acquireJobLock } from './job.js';
import { futureDatedWarning, pruneJob } from './prune.js';

const DAY = 86_400_000;

/**
 * Raises CertificateExpiring while any configured certificate has under 30 days left (one alert,
 * naming each such certificate: a break-glass certificate in a safe expires as surely as the
 * operations one); closes it otherwise.
 */
export async function reviewCertificateExpiry(config: StoredConfig, alerts: AlertStore, now = new Date()): Promise<void> {
  const enc = config.encryption;
  const expiring = enc?.mode === 'Certificate' ? enc.certificates.filter((c) => Date.parse(c.notAfter) - now.getTime() < 30 * DAY) : [];
  if (expiring.length === 0) {
    await alerts.close(['CertificateExpiring']);
    return;
  }
  const each = expiring.map(
    (c) => `${c.thumbprint} (${c.subject}) ${Date.parse(c.notAfter) < now.getTime() ? 'expired' : 'expires'} on ${c.notAfter}`,
  );
  await alerts.raise(
    'CertificateExpiring',
    expiring.length === 1 ? `The encryption certificate ${each[0]}.` : `The encryption certificates ${each.join('; ')}.`,
  );
}

/**
 * Raises BackupOverdue while the scheduler is on and no backup succeeded for twice the frequency
 * (counted from when the scheduler was turned on until a first success); closes it once the
 * scheduler is off: overdue means overdue by the schedule, and with none there is nothing to be late for.
 */
async function reviewBackupOverdue(config: StoredConfig, alerts: AlertStore, now: Date): Promise<void> {
  if (!config.scheduler.enabled) {
    await alerts.close(['BackupOverdue']);
    return;
  }
  const since = config.lastSuccessfulBackupTime ?? config.scheduler.enabledAt;
  if (since === undefined || now.getTime() - Date.parse(since) <= 2 * config.scheduler.frequencyInHours * 3_600_000) return;
  const what =
    config.lastSuccessfulBackupTime !== undefined
      ? `No backup succeeded since ${since}`
      : `No backup has succeeded since the scheduler was turned on at ${since}`;
  await alerts.raise('BackupOverdue', `${what}; the frequency is ${config.scheduler.frequencyInHours} hours.`);
}

/**
 * The alerts time raises with no job failing: CertificateExpiring and BackupOverdue. Every
 * scheduler tick reviews them, and so does Get-BackupAlert before it lists: were the timer that
 * runs the ticks gone, nothing else would, and the overdue backups it left would go unsaid.
 */
export async function reviewTimedAlerts(config: StoredConfig, alerts: AlertStore, now = new Date()): Promise<void> {
  await reviewCertificateExpiry(config, alerts, now);
  await reviewBackupOverdue(config, alerts, now);
}

/**
 * One scheduler tick (a systemd timer or cron calls it): raise or close CertificateExpiring and
 * BackupOverdue, then, when the scheduler is on and a backup is due, take one and apply retention.
 */
export async function schedulerTick(
  home: string,
  progress: ProgressReporter,
  signal?: AbortSignal,
  now = new Date(),
  warn?: BackupJobOptions['warn'],
): Promise<BackupOutcome | undefined> {
  const store = new ConfigStore(home);
  const config = store.read();
  await reviewTimedAlerts(config, new AlertStore(home, config.alertSinks, warn), now);
  if (!config.scheduler.enabled) {
    progress.log?.(
      'Warning',
      'The backup scheduler is off, so no backup was taken. Turn it on with Set-BackupShare -IsBackupSchedulerEnabled $true, or take ' +
        'one now with Start-InfrastructureBackup.',
    );
    return undefined;
  }
  const frequency = config.scheduler.frequencyInHours * 3_600_000;
  const last = lastSuccessCounted(config, now);
  if (last === undefined && config.lastSuccessfulBackupTime !== undefined) {
    progress.log?.(
      'Warning',
      `The last successful backup is recorded at ${config.lastSuccessfulBackupTime}, later than this machine's time now ` +
        `(${now.toISOString()}): the clock was wrong then, or is now. A backup is taken now, and the schedule counts from it. ` +
        'Check the clock (timedatectl) and its time source; backups made while it was wrong carry its time (Get-InfrastructureBackup).',
    );
  }
  if (last !== undefined && now.getTime() - last < frequency) {
    progress.log?.(
      'Verbose',
      `No backup is due: the last one succeeded at ${config.lastSuccessfulBackupTime}, and the next is due at ${new Date(last + frequency).toISOString()} (every ${config.scheduler.frequencyInHours} hours). Start-InfrastructureBackup takes one now.`,
    );
    return undefined;
  }
  // Decided again under the job lock, which the backup then runs under: a tick that read the
  // configuration before another tick's backup noted its success, and came here once that backup
  // had let the lock go, would otherwise take a second backup at once.
  const lock = acquireJobLock(home, 'scheduled backup');
  let outcome: BackupOutcome;
  try {
    const noted = lastSuccessCounted(store.read(), now);
    if (noted !== undefined && now.getTime() - noted < frequency) return undefined;
    outcome = await runBackupJob({ home, progress, signal, warn, lock });
  } finally {
    lock.release();
  }
  // Retention and share as they are now, not as the tick read them before a backup that may have
  // run for hours: a retention lengthened meanwhile (backups kept for an investigation) must hold.
  const current = store.read();
  const pruned = await pruneJob(home, shareAccess(store, {}, current), {
    retentionPeriodInDays: current.scheduler.retentionPeriodInDays,
    dryRun: false,
    now,
  });
  // What Invoke-BackupPrune would warn of, the tick's log (the timer's journal) says too: left
  // unsaid, a future-dated backup or a store prune cannot collect would go unseen.
  for (const folder of pruned.PathsInFuture) progress.log?.('Warning', futureDatedWarning(folder));
  if (pruned.RepositoryWarning) progress.log?.('Warning', pruned.RepositoryWarning);
  return outcome;
}
