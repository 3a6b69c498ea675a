import { webhookShown } from '../alerts/sinks.js';
import { lastSuccessCounted } from '../config/schedule.js';
import type { StoredCertificate, StoredConfig } from '../config/store.js';

/**
 * The AzsBackup.EncryptionCertificate object: one configured certificate, with its expiry and
 * whether backups carry its authenticator (its .pfx was given once to Set-BackupShare).
 */
export function certificateView(c: StoredCertificate) {
  return {
    Thumbprint: c.thumbprint,
    Subject: c.subject,
    NotBefore: c.notBefore,
    NotAfter: c.notAfter,
    Authenticated: c.authenticationSecret !== undefined,
  };
}

/** The AzsBackup.BackupLocation object: the configuration as operators see it, secrets always null. */
export function backupLocation(config: StoredConfig) {
  // As last measured, of the share configured now: a Get reaches no share (it must answer while the share is down).
  const measured = config.shareCapacity?.path === config.share?.path ? config.shareCapacity : undefined;
  const enc = config.encryption;
  const certificates = enc?.mode === 'Certificate' ? enc.certificates : [];
  const first = certificates[0];
  // With no last success the schedule counts (none yet, or one recorded in the future by a wrong
  // clock), the next tick takes a backup at once.
  const now = new Date();
  const last = config.scheduler.enabled ? lastSuccessCounted(config, now) : undefined;
  const next = !config.scheduler.enabled
    ? null
    : new Date(last === undefined ? now.getTime() : last + config.scheduler.frequencyInHours * 3_600_000).toISOString();
  return {
    Path: config.share?.path ?? null,
    UserName: config.share?.userName ?? null,
    Password: null,
    EncryptionMode: enc?.mode ?? null,
    // The SPEC's single fields name the first certificate; EncryptionCertificates lists them all.
    EncryptionCertThumbprint: first?.thumbprint ?? null,
    EncryptionCertSubject: first?.subject ?? null,
    EncryptionCertExpiry: first?.notAfter ?? null,
    EncryptionCertificates: first ? certificates.map(certificateView) : null,
    EncryptionKeyId: enc?.mode === 'Key' ? enc.keyId : null,
    IsBackupSchedulerEnabled: config.scheduler.enabled,
    BackupFrequencyInHours: config.scheduler.frequencyInHours,
    BackupRetentionPeriodInDays: config.scheduler.retentionPeriodInDays,
    AvailableCapacity: measured?.available ?? null,
    AvailableCapacityMeasured: measured?.measuredAt ?? null,
    LastBackupTime: config.lastBackupTime ?? null,
    NextBackupTime: next,
    AlertCommand: config.alertSinks?.command ?? null,
    AlertWebhookUri: config.alertSinks?.webhookUri ? webhookShown(config.alertSinks.webhookUri) : null,
  };
}
