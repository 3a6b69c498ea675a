import { existsSync } from 'node:fs';
import type { Cmdlet } from '../src/host/cmdlet.js';
import type { SetBackupShareParameters } from './generated/parameters.js';
import { unauthenticatedCertificateWarning } from '../src/crypto/certificate-authentication.js';
import { AzsError, usageError } from '../src/errors.js';
import type { AlertSinks } from '../src/alerts/sinks.js';
import { ConfigStore, type EncryptionSettings, type StoredConfig } from '../src/config/store.js';
import { type PfxGiven, proveCertificates, readEncryptionCertificates } from '../src/session/certificates.js';
import { requiredCapacity } from '../src/session/capacity.js';
import { backupLocation } from '../src/session/location.js';
import { runJob } from '../src/engine/job.js';
import { credentialParameters, notConfigured, openShare, shareAccess, shareParameters } from '../src/engine/share-access.js';

/**
 * Configures the backup location: path, credential, encryption key or certificate, and scheduler;
 * validates access unless -SkipValidation. Key → certificate is allowed; certificate → key is not.
 */
const setBackupShare: Cmdlet<SetBackupShareParameters> = async ({
  params: given,
  home,
  shouldProcess,
  secretsFromEnvironment,
  writeWarning,
}) => {
  shareParameters(given, secretsFromEnvironment);
  const store = new ConfigStore(home);
  const current = store.read();
  // A key left in AZSBACKUP_ENCRYPTIONKEY (from a restore, say) configures one where none is, but
  // never replaces a configured key or certificate unless -EncryptionKey is named, nor clashes
  // with a certificate given now.
  const keyFromEnvironment =
    secretsFromEnvironment?.has('EncryptionKey') && (current.encryption !== undefined || given.EncryptionCertPath !== undefined);
  const params: SetBackupShareParameters = keyFromEnvironment ? { ...given, EncryptionKey: undefined } : given;
  const pfxs = pfxOf(params);
  const encryption = await chooseEncryption(store, current, params.EncryptionKey, params.EncryptionCertPath, pfxs);
  const path = params.Path ?? current.share?.path;
  if (!path) throw notConfigured('share');
  const forShare = credentialParameters({ ...shareParameters(params, secretsFromEnvironment), Path: path }, path);
  const givesCredential =
    forShare.Credential !== undefined ||
    forShare.UserName !== undefined ||
    forShare.StorageAccountKey !== undefined ||
    forShare.SasToken !== undefined;
  const access = shareAccess(store, forShare, current);
  if (!givesCredential && path !== current.share?.path) delete access.credential;

  const credential = access.credential;
  const share = {
    path,
    ...(credential && 'userName' in credential
      ? { userName: credential.userName, password: store.seal(credential.password, 'share-password') }
      : {}),
    ...(credential && 'accountKey' in credential ? { storageAccountKey: store.seal(credential.accountKey, 'storage-account-key') } : {}),
    ...(credential && 'sasToken' in credential ? { sasToken: store.seal(credential.sasToken, 'sas-token') } : {}),
  };
  // Only what was given changes, applied to the configuration as it is when written (under its
  // lock): a Set-BackupShare that ran meanwhile, while this one validated the share or asked to
  // confirm, keeps what it set.
  const shareGiven = params.Path !== undefined || givesCredential;
  const encryptionGiven =
    params.EncryptionKey !== undefined || params.EncryptionCertPath !== undefined || params.DecryptionCertPath !== undefined;
  const apply = (base: StoredConfig): StoredConfig => ({
    ...base,
    share: shareGiven || !base.share ? share : base.share,
    encryption: encryptionGiven || !base.encryption ? encryption : base.encryption,
    scheduler: scheduler(base.scheduler, params),
    alertSinks: alertSinks(base.alertSinks, params.AlertCommand, params.AlertWebhookUri),
  });
  const next = apply(current);
  // -SkipValidation skips the trip to the server, not the syntax: a path or account that could
  // never work must not be saved for the scheduler to trip over later.
  const { parseShareLocation, parseUserName } = await import('../src/targets/location.js');
  parseShareLocation(path);
  if (credential && 'userName' in credential) parseUserName(credential.userName);

  if (!(await shouldProcess(path, 'Set the backup share, credential, encryption and schedule'))) return;

  // A new share or encryption waits for no job and is refused while one runs (JobLockHeld): a
  // backup reads both as it starts, so one running now would commit to the old share, or wrapped
  // for the old key, after the configuration named the new one, and no warning of backups left on
  // the old key (warnOfOldBackups) could count it yet. Retention, schedule and alerts change at
  // any time. On a fresh machine (no AZSBACKUP_HOME yet) no job can run, and the lock would make
  // the folder before the share is validated.
  const locationChanged = existsSync(home) && (encryptionGiven || (params.Path !== undefined && params.Path !== current.share?.path));
  const save = async (): Promise<{ saved: StoredConfig }> => {
    let available: number | null = null;
    if (!params.SkipValidation) {
      const { checkShare } = await import('../src/targets/share-check.js');
      const result = await checkShare(await openShare(access), { requiredBytes: await requiredCapacity(next) });
      if (result.Error) throw result.Error;
      available = result.AvailableCapacity;
    }
    // The share's store is joined (and wrapped for the certificates given) before anything is saved,
    // and its keys are kept in the same write: a join that fails (share unreachable, store damaged)
    // ends the command with the configuration as it was, never half changed.
    const joined =
      pfxs.length > 0 && !params.SkipValidation ? await joinShareRepository(store, access, pfxs, next, writeWarning) : undefined;
    const measuredAt = new Date().toISOString();
    const saved = await store.update((base) => {
      const next = { ...apply(base), ...(joined ? { repository: joined } : {}) };
      // What Get-BackupConfiguration shows of the share's room until the next measurement.
      return available === null || !next.share ? next : { ...next, shareCapacity: { path: next.share.path, available, measuredAt } };
    });
    return { saved };
  };
  const { saved } = locationChanged ? await runJob(home, 'set backup share', save) : await save();
  if (!params.SkipValidation) {
    // The share was just found reachable, writable and with room: an alert about it (or about the
    // share it replaces) says nothing true any more, and would page someone until the next backup.
    const { AlertStore, shareAlertTypes } = await import('../src/alerts/alerts.js');
    await new AlertStore(home, saved.alertSinks).close(shareAlertTypes);
  }
  if (saved.encryption?.mode === 'Certificate')
    for (const c of saved.encryption.certificates)
      if (!c.authenticationSecret) writeWarning(unauthenticatedCertificateWarning(c.thumbprint));
  if (encryptionGiven) {
    // A rotated certificate settles CertificateExpiring now, not at the next scheduler tick.
    const [{ AlertStore }, { reviewCertificateExpiry }] = await Promise.all([
      import('../src/alerts/alerts.js'),
      import('../src/engine/scheduler.js'),
    ]);
    await reviewCertificateExpiry(saved, new AlertStore(home, saved.alertSinks));
    await warnOfOldBackups(current.encryption, saved.encryption, access, writeWarning);
  }
  return backupLocation(saved);
};

/**
 * With a .pfx in hand, this machine takes what it needs to add to the share's deduplicating store
 * (made by another machine, or before a redeploy), and the store is wrapped for every certificate
 * of `config`, the configuration about to be saved; with the certificate alone it could do neither.
 * Returns what config.json is to keep of the store.
 */
async function joinShareRepository(
  store: ConfigStore,
  access: Parameters<typeof openShare>[0],
  pfxs: PfxGiven[],
  config: StoredConfig,
  writeWarning: (message: string) => void,
): Promise<StoredConfig['repository']> {
  const [{ joinRepository, repositoryToKeep }, { materialsOf }, { configuredRecipients }] = await Promise.all([
    import('../src/engine/repository-access.js'),
    import('../src/session/certificates.js'),
    import('../src/engine/share-access.js'),
  ]);
  const joined = await joinRepository(await openShare(access), await materialsOf(pfxs), configuredRecipients(store, config));
  if (!joined) return undefined;
  if (joined.wrappedFor.length)
    writeWarning(
      `The share's deduplicating store is now encrypted for ${joined.wrappedFor.join(', ')} too: its .pfx alone restores the backups made from now on.`,
    );
  return repositoryToKeep(store, access.path, joined.remember);
}

const recipientIds = (e: EncryptionSettings | undefined): string[] =>
  e === undefined ? [] : e.mode === 'Certificate' ? e.certificates.map((c) => c.thumbprint) : [e.keyId];

/**
 * A rotation, or a certificate added, changes nothing on the share: backups made before stay
 * encrypted for what they were made for. Say so, and how to re-wrap them for every configured
 * recipient, rather than let the operator retire the old material or trust a break-glass
 * certificate that opens none of them.
 */
async function warnOfOldBackups(
  before: EncryptionSettings | undefined,
  after: EncryptionSettings | undefined,
  access: Parameters<typeof openShare>[0],
  warn: (m: string) => void,
): Promise<void> {
  const oldIds = recipientIds(before);
  const newIds = recipientIds(after);
  const added = newIds.filter((id) => !oldIds.includes(id));
  if (oldIds.length === 0 || added.length === 0) return;
  const { backupsNotWrappedFor } = await import('../src/engine/rewrap.js');
  const count = await backupsNotWrappedFor(await openShare(access), newIds).catch(() => 0);
  if (count === 0) return;
  const certificate = before!.mode === 'Certificate';
  const material = certificate
    ? '-DecryptionCertPath <a .pfx that opens them> -DecryptionCertPassword <its password>'
    : '-EncryptionKey <old key>';
  const previous = `the previous ${certificate ? (oldIds.length === 1 ? 'certificate' : 'certificates') : 'key'} ${oldIds.join(', ')}`;
  const them = count === 1 ? 'it' : 'them';
  warn(
    `${count} backup${count === 1 ? '' : 's'} on the share ${count === 1 ? 'is' : 'are'} not encrypted for ${added.join(', ')}; ` +
      `${count === 1 ? 'it stays' : 'they stay'} encrypted for ${previous}: keep its decryption material to restore ${them}, ` +
      `or re-wrap ${them} for every configured recipient with Update-BackupEncryption ${material}.`,
  );
}

/** Given values replace the current ones; turning the scheduler on starts the BackupOverdue count. */
function scheduler(current: StoredConfig['scheduler'], params: SetBackupShareParameters): StoredConfig['scheduler'] {
  const enabled = params.IsBackupSchedulerEnabled ?? current.enabled;
  const enabledAt = !enabled ? undefined : current.enabled ? current.enabledAt : new Date().toISOString();
  return {
    enabled,
    ...(enabledAt ? { enabledAt } : {}),
    frequencyInHours: params.BackupFrequencyInHours ?? current.frequencyInHours,
    retentionPeriodInDays: params.BackupRetentionPeriodInDays ?? current.retentionPeriodInDays,
  };
}

/** Given values replace the current ones; an empty value removes a sink. */
function alertSinks(current: AlertSinks = {}, command?: string[], webhookUri?: string): AlertSinks {
  const next = { ...current };
  if (command !== undefined) next.command = command.filter((a) => a !== '');
  if (webhookUri !== undefined) next.webhookUri = webhookUri;
  return {
    ...(next.command?.length ? { command: next.command } : {}),
    ...(next.webhookUri ? { webhookUri: next.webhookUri } : {}),
  };
}

/** Each .pfx of -DecryptionCertPath, all opened with the one -DecryptionCertPassword. */
function pfxOf(params: SetBackupShareParameters): PfxGiven[] {
  if (params.DecryptionCertPath === undefined) {
    if (params.DecryptionCertPassword !== undefined)
      throw usageError(
        '-DecryptionCertPassword goes with -DecryptionCertPath.',
        'PfxPathMissing',
        'DecryptionCertPassword',
        'Give the .pfx whose password it is with -DecryptionCertPath, or leave -DecryptionCertPassword out.',
      );
    return [];
  }
  return params.DecryptionCertPath.map((path) => ({ path, password: params.DecryptionCertPassword ?? '' }));
}

async function chooseEncryption(
  store: ConfigStore,
  current: StoredConfig,
  key?: string,
  certPaths?: string[],
  pfxs: PfxGiven[] = [],
): Promise<EncryptionSettings> {
  if (key !== undefined && (certPaths !== undefined || pfxs.length > 0)) {
    throw usageError(
      'Give either -EncryptionKey or -EncryptionCertPath (with its .pfx), not both.',
      'EncryptionConflict',
      'EncryptionKey',
      'Encrypt with a symmetric key (-EncryptionKey) or with certificates (-EncryptionCertPath, and -DecryptionCertPath with its password): run Set-BackupShare with one of them.',
    );
  }
  const configured = current.encryption?.mode === 'Certificate' ? current.encryption.certificates : undefined;
  if (certPaths !== undefined) {
    const certificates = await readEncryptionCertificates(certPaths, configured ?? []);
    return { mode: 'Certificate', certificates: await proveCertificates(store, certificates, pfxs) };
  }
  if (pfxs.length > 0) {
    // Certificates configured already, given their .pfx now: their backups from here on prove who made them.
    if (!configured) {
      throw usageError(
        '-DecryptionCertPath proves the encryption certificate; give -EncryptionCertPath too, since no certificate is configured.',
        'EncryptionCertificateMissing',
        'DecryptionCertPath',
        'Give the .cer of the certificate with -EncryptionCertPath in the same command.',
      );
    }
    return { mode: 'Certificate', certificates: await proveCertificates(store, configured, pfxs) };
  }
  if (key !== undefined) {
    if (configured) {
      throw new AzsError('Switching the encryption from a certificate back to a symmetric key is refused.', {
        errorId: 'EncryptionDowngradeRefused',
        category: 'InvalidOperation',
        exitCode: 2,
        targetObject: configured.map((c) => c.thumbprint).join(', '),
        recommendedAction:
          'Keep the certificate, or rotate to a new one with -EncryptionCertPath. Clear-BackupConfiguration starts over if you must.',
      });
    }
    const { parseSymmetricKey, symmetricKeyId } = await import('../src/crypto/symmetric-key.js');
    return { mode: 'Key', keyId: symmetricKeyId(parseSymmetricKey(key)), key: store.seal(key, 'encryption-key') };
  }
  if (current.encryption) return current.encryption;
  throw usageError(
    'No encryption is configured yet: give -EncryptionKey or -EncryptionCertPath.',
    'EncryptionRequired',
    undefined,
    'Make a key or certificate with New-EncryptionKey, then pass it to Set-BackupShare.',
  );
}
export default setBackupShare;
