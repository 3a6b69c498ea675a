import type { Cmdlet } from '../src/host/cmdlet.js';
import type { SetBackupShareParameters } from './generated/parameters.js';
import { unauthenticatedCertificateWarning } from '../src/crypto/certificate-authentication.js';
import { AzsError, usageError } from '../src/errors.js';
import type { AlertSinks } from '../src/alerts/sinks.js';
import { ConfigStore, type CertificateRecipient, type EncryptionSettings, type StoredConfig } from '../src/config/store.js';
import { requiredCapacity } from '../src/session/capacity.js';
import { backupLocation } from '../src/session/location.js';
import { CERTIFICATE_SECRET_CONTEXT, notConfigured, openShare, shareAccess, shareParameters } from '../src/engine/share-access.js';

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
  const encryption = await chooseEncryption(store, current, params.EncryptionKey, params.EncryptionCertPath, pfxOf(params));
  const path = params.Path ?? current.share?.path;
  if (!path) throw notConfigured('share');
  const givesCredential =
    params.Credential !== undefined ||
    params.UserName !== undefined ||
    params.StorageAccountKey !== undefined ||
    params.SasToken !== undefined;
  const access = shareAccess(store, { ...shareParameters(params, secretsFromEnvironment), Path: path }, current);
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

  let available: number | null = null;
  if (!params.SkipValidation) {
    const { checkShare } = await import('../src/targets/share-check.js');
    const result = await checkShare(await openShare(access), { requiredBytes: await requiredCapacity(next) });
    if (result.Error) throw result.Error;
    available = result.AvailableCapacity;
  }
  const saved = await store.update(apply);
  if (saved.encryption?.mode === 'Certificate' && !saved.encryption.authenticationSecret)
    writeWarning(unauthenticatedCertificateWarning(saved.encryption.thumbprint));
  if (encryptionGiven) {
    // A rotated certificate settles CertificateExpiring now, not at the next scheduler tick.
    const [{ AlertStore }, { reviewCertificateExpiry }] = await Promise.all([
      import('../src/alerts/alerts.js'),
      import('../src/engine/scheduler.js'),
    ]);
    await reviewCertificateExpiry(saved, new AlertStore(home, saved.alertSinks));
    await warnOfOldBackups(current.encryption, saved.encryption, access, writeWarning);
  }
  return backupLocation(saved, available);
};

const recipientId = (e: EncryptionSettings | undefined): string | undefined => (e?.mode === 'Certificate' ? e.thumbprint : e?.keyId);

/**
 * A rotation changes nothing on the share: backups made before stay encrypted for the old key or
 * certificate. Say so, and how to re-wrap them, rather than let the operator retire the old one.
 */
async function warnOfOldBackups(
  before: EncryptionSettings | undefined,
  after: EncryptionSettings | undefined,
  access: Parameters<typeof openShare>[0],
  warn: (m: string) => void,
): Promise<void> {
  const oldId = recipientId(before);
  const newId = recipientId(after);
  if (!oldId || !newId || oldId === newId) return;
  const { backupsNotWrappedFor } = await import('../src/engine/rewrap.js');
  const count = await backupsNotWrappedFor(await openShare(access), newId).catch(() => 0);
  if (count === 0) return;
  const material =
    before!.mode === 'Certificate' ? '-DecryptionCertPath <old .pfx> -DecryptionCertPassword <its password>' : '-EncryptionKey <old key>';
  warn(
    `${count} backup${count === 1 ? '' : 's'} on the share stay${count === 1 ? 's' : ''} encrypted for the previous ${before!.mode === 'Certificate' ? 'certificate' : 'key'} ${oldId}: ` +
      `keep its decryption material to restore ${count === 1 ? 'it' : 'them'}, or re-wrap ${count === 1 ? 'it' : 'them'} for the new one with Update-BackupEncryption ${material}.`,
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

interface PfxGiven {
  path: string;
  password: string;
}

function pfxOf(params: SetBackupShareParameters): PfxGiven | undefined {
  if (params.DecryptionCertPath === undefined) {
    if (params.DecryptionCertPassword !== undefined)
      throw usageError('-DecryptionCertPassword goes with -DecryptionCertPath.', 'PfxPathMissing');
    return undefined;
  }
  return { path: params.DecryptionCertPath, password: params.DecryptionCertPassword ?? '' };
}

async function chooseEncryption(
  store: ConfigStore,
  current: StoredConfig,
  key?: string,
  certPath?: string,
  pfx?: PfxGiven,
): Promise<EncryptionSettings> {
  if (key !== undefined && (certPath !== undefined || pfx !== undefined)) {
    throw usageError('Give either -EncryptionKey or -EncryptionCertPath (with its .pfx), not both.', 'EncryptionConflict');
  }
  if (certPath !== undefined) {
    const { readCertificateFile } = await import('../src/crypto/certificate.js');
    const info = await readCertificateFile(certPath);
    if (info.notAfter.getTime() < Date.now()) {
      throw usageError(
        `The certificate ${certPath} expired on ${info.notAfter.toISOString()}.`,
        'CertificateExpired',
        certPath,
        'Make a new certificate with New-EncryptionKey -Certificate.',
      );
    }
    const certificate: CertificateRecipient = {
      mode: 'Certificate',
      thumbprint: info.thumbprint,
      subject: info.subject,
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
      publicKeyPem: info.publicKeyPem,
    };
    return pfx ? withAuthenticationSecret(store, certificate, pfx) : certificate;
  }
  if (pfx !== undefined) {
    // The certificate configured already, given its .pfx now: its backups from here on prove who made them.
    if (current.encryption?.mode !== 'Certificate') {
      throw usageError(
        '-DecryptionCertPath proves the encryption certificate; give -EncryptionCertPath too, since no certificate is configured.',
        'EncryptionCertificateMissing',
      );
    }
    return withAuthenticationSecret(store, current.encryption, pfx);
  }
  if (key !== undefined) {
    if (current.encryption?.mode === 'Certificate') {
      throw new AzsError('Switching the encryption from a certificate back to a symmetric key is refused.', {
        errorId: 'EncryptionDowngradeRefused',
        category: 'InvalidOperation',
        exitCode: 2,
        targetObject: current.encryption.thumbprint,
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
/**
 * Derives, from the .pfx given once at setup, the secret that lets backups prove they were made
 * here; keeps the secret sealed and lets the .pfx go.
 */
async function withAuthenticationSecret(
  store: ConfigStore,
  certificate: CertificateRecipient,
  pfx: PfxGiven,
): Promise<CertificateRecipient> {
  const [{ readPfxFile }, { certificateAuthenticationSecret, pfxDoesNotMatch }] = await Promise.all([
    import('../src/crypto/certificate.js'),
    import('../src/crypto/certificate-authentication.js'),
  ]);
  const { info, privateKeyPem } = await readPfxFile(pfx.path, pfx.password);
  if (info.thumbprint !== certificate.thumbprint) throw pfxDoesNotMatch(certificate.thumbprint, info.thumbprint, pfx.path);
  const secret = certificateAuthenticationSecret(privateKeyPem, info.thumbprint).toString('base64');
  return { ...certificate, authenticationSecret: store.seal(secret, CERTIFICATE_SECRET_CONTEXT) };
}
export default setBackupShare;
