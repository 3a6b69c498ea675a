import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { AzsError, isAzsError, quoted, usageError } from '../errors.js';
import { AlertStore, shareAlertTypes } from '../alerts/alerts.js';
import type { HeldLock } from '../config/file-lock.js';
import { ConfigStore, type StoredConfig, type StoredRole } from '../config/store.js';
import type { RoleDefinition } from '../providers/provider.js';
import { withPassword } from '../providers/pgconn.js';
import type { ProgressReporter } from '../progress.js';
import { configuredRecipients, openShare, shareAccess } from './share-access.js';
import { runBackup, type BackupOutcome } from './backup.js';
import { FILES_CACHE_FOLDER } from './files-cache.js';
import { queuedRoleStatus, type BackupRecord } from './backup-record.js';
import { pauseAfterConfigReadForTests, runJob } from './job.js';
import { rememberedRepository, rememberRepository, repositoryForBackup, type RepositoryForBackup } from './repository-access.js';
import type { EncryptFor } from '../crypto/recipient.js';
import type { Target } from '../targets/target.js';
import { jobProcess, JobStore, type JobRecord } from './job-store.js';

/**
 * A backup as a job: the lock, the job record others can follow, the configured share and
 * encryption, and the alerts its outcome raises or closes. The foreground command and the
 * background job runner both come through here.
 */

export interface BackupJobOptions {
  home: string;
  roleNames?: string[];
  progress: ProgressReporter;
  signal?: AbortSignal;
  /** Set when the job was queued by `-AsJob`: its name and the lock handed over to this process. */
  name?: string;
  lock?: HeldLock;
  /** Hears what the operator must know that does not stop the job (a damaged alert state set aside). */
  warn?: (message: string, target: string) => void;
}

export function rolesToBackUp(store: ConfigStore, config: StoredConfig, names?: string[]): RoleDefinition[] {
  if (config.roles.length === 0) {
    throw new AzsError('No infrastructure roles are registered, so there is nothing to back up.', {
      errorId: 'NoRolesRegistered',
      category: 'InvalidOperation',
      exitCode: 2,
      recommendedAction: 'Register roles with Register-InfrastructureRole.',
    });
  }
  const unknown = (names ?? []).filter((n) => !config.roles.some((r) => r.name.toLowerCase() === n.toLowerCase()));
  if (unknown.length) {
    throw usageError(
      `No role named ${unknown.map((n) => quoted(n)).join(', ')}; registered roles: ${config.roles.map((r) => r.name).join(', ')}.`,
      'RoleNotFound',
      unknown.map((n) => quoted(n, 1000)),
      'Give -RoleName as Get-InfrastructureRole lists the roles, or register the role first with Register-InfrastructureRole.',
    );
  }
  const chosen = names?.length ? config.roles.filter((r) => names.some((n) => n.toLowerCase() === r.name.toLowerCase())) : config.roles;
  return chosen.map((r) => unsealRole(store, r));
}

/** The role as providers take it: a sealed database password goes back into the connection URI. */
export function unsealRole(store: ConfigStore, role: StoredRole): RoleDefinition {
  const { databasePassword, ...rest } = role;
  if (!databasePassword || !rest.connectionString) return rest;
  return { ...rest, connectionString: withPassword(rest.connectionString, store.open(databasePassword, `role:${role.name}`)) };
}

/** The role of this name as this machine registered it, secrets unsealed; undefined on a machine that never registered it. */
export function registeredRole(store: ConfigStore, name: string): RoleDefinition | undefined {
  const local = store.read().roles.find((r) => r.name.toLowerCase() === name.toLowerCase());
  return local && unsealRole(store, local);
}

/** What a queued job looks like before it starts. */
export function queuedRecord(name: string, sharePath: string, roles: RoleDefinition[]): BackupRecord {
  return {
    Name: name,
    Status: 'Queued',
    RoleStatus: roles.map(queuedRoleStatus),
    CreatedDateTime: new Date().toISOString(),
    TimeTakenToCreate: null,
    BackupDataVersion: '1.0',
    EncryptionCertThumbprint: null,
    EncryptionKeyId: null,
    Size: 0,
    IsCloudRecoveryReady: false,
    SharePath: sharePath,
    Progress: 'Queued',
  };
}

export async function runBackupJob(opts: BackupJobOptions): Promise<BackupOutcome> {
  const store = new ConfigStore(opts.home);
  // Read once before the lock only so that a backup that cannot start (nothing configured, no
  // such role) is refused at once, whatever job runs; what it backs up is read under the lock.
  await preparedOrFailed(opts, store, (fail) => runJob(opts.home, `backup ${opts.name}`, fail, opts.lock));
  await pauseAfterConfigReadForTests();
  const name = opts.name ?? randomUUID();
  return runJob(
    opts.home,
    `backup ${name}`,
    async () => {
      // Read again under the lock: a Set-BackupShare changes the share or the encryption only
      // under it, and one that took and let it go since the first read must not leave this backup
      // writing to the old share, or wrapped for the old key, while the configuration names the new.
      const prepared = await preparedOrFailed(opts, store, (fail) => fail());
      return recordedBackup(opts, store, prepared, name);
    },
    opts.lock,
  );
}

/** The configuration as the backup uses it; a queued job that cannot start has its record and alert say why (`fail`, under the lock). */
async function preparedOrFailed(
  opts: BackupJobOptions,
  store: ConfigStore,
  underLock: (fail: () => Promise<void>) => Promise<void>,
): Promise<PreparedBackup> {
  try {
    const config = store.read();
    return {
      config,
      access: shareAccess(store, {}, config),
      recipients: configuredRecipients(store, config),
      roles: rolesToBackUp(store, config, opts.roleNames),
    };
  } catch (e) {
    // A queued job (-AsJob) whose configuration changed before it started: nobody reads its
    // output, so its record and an alert say why, and the lock it was handed is let go.
    const { lock, name } = opts;
    if (lock && name) await underLock(() => failQueuedJob(opts.home, name, e));
    throw e;
  }
}

type PreparedBackup = {
  config: StoredConfig;
  access: ReturnType<typeof shareAccess>;
  recipients: ReturnType<typeof configuredRecipients>;
  roles: RoleDefinition[];
};

/** The backup under the job lock: its job record kept current, the alerts its outcome raises or closes, the last backup noted. */
async function recordedBackup(
  opts: BackupJobOptions,
  store: ConfigStore,
  { config, access, recipients, roles }: PreparedBackup,
  name: string,
): Promise<BackupOutcome> {
  const jobs = new JobStore(opts.home);
  const alerts = new AlertStore(opts.home, config.alertSinks, opts.warn);
  const mine = jobProcess(process.pid);
  let lastSaved = 0;
  // Once the backup runs, the home holds only this machine's record of it, not the backup: a
  // record that cannot be written (the home's file system filled meanwhile) must neither abort
  // the backup from inside a role nor turn one committed on the share into a failure.
  // A progress record lost so is only stale until the next one, or the final one, is written.
  const save = (record: JobRecord, force = false): unknown => {
    if (!force && Date.now() - lastSaved < 500) return undefined;
    lastSaved = Date.now();
    try {
      jobs.save({ ...record, ...mine });
      return undefined;
    } catch (e) {
      return e;
    }
  };
  const started = queuedRecord(name, access.path, roles);
  // A home that cannot take even this fails the backup before it starts, as it always did.
  jobs.save({ ...started, Status: 'Running', ...mine });
  lastSaved = Date.now();
  let outcome: BackupOutcome;
  let storeAlert: string | undefined;
  try {
    const target = await openShare(access);
    const { repository, fullCopyBecause, wrapsTampered, wrapsUnsealed } = await backupRepository(
      store,
      config,
      access.path,
      target,
      recipients,
    );
    outcome = await runBackup({
      target,
      sharePath: access.path,
      repository,
      recipients,
      roles,
      progress: opts.progress,
      signal: opts.signal,
      name,
      privateDir: access.privateDir,
      filesCache: path.join(opts.home, FILES_CACHE_FOLDER),
      onUpdate: (r) => save(r),
    });
    if (fullCopyBecause) outcome.warnings.push(fullCopyBecause);
    if (wrapsTampered) storeAlert = fullCopyBecause;
    if (wrapsUnsealed) {
      outcome.warnings.push(wrapsUnsealed);
      storeAlert = wrapsUnsealed;
    }
  } catch (e) {
    const error = isAzsError(e)
      ? e
      : new AzsError(`The backup failed: ${(e as Error).message}`, { errorId: 'BackupFailed', category: 'NotSpecified', cause: e });
    save({ ...started, Status: 'Failed', Progress: error.message }, true);
    // The backup's own failure is the one to report, not a home too full to note it.
    await alerts.raise(error.alertType ?? 'BackupGeneral', `Backup ${name} failed: ${error.message}`, name).catch(() => undefined);
    throw error;
  }
  const { record } = outcome;
  let unrecorded = save({ ...record, Progress: null }, true);
  try {
    await noteOutcome(store, alerts, name, record, storeAlert);
  } catch (e) {
    unrecorded ??= e;
  }
  if (unrecorded !== undefined) outcome.warnings.push(unrecordedWarning(name, record, unrecorded));
  return outcome;
}

/** What the backup's outcome changes on this machine: the alerts it raises or closes, the last backup noted. */
async function noteOutcome(
  store: ConfigStore,
  alerts: AlertStore,
  name: string,
  record: BackupRecord,
  storeAlert: string | undefined,
): Promise<void> {
  // Only a backup on the share proves the share usable and the backups current again; one whose
  // every role failed wrote nothing there.
  if (record.Status === 'Succeeded') {
    await alerts.close([...shareAlertTypes, 'BackupOverdue', 'BackupGeneral']);
  } else {
    if (record.Status !== 'Failed') await alerts.close([...shareAlertTypes, 'BackupOverdue']);
    const failed = record.RoleStatus.filter((r) => r.Status === 'Failed').map((r) => `${r.RoleName}: ${r.Error}`);
    await alerts.raise(
      'BackupGeneral',
      `Backup ${name} ${record.Status === 'Failed' ? 'failed' : 'partly failed'}. ${failed.join(' ')}`,
      name,
    );
  }
  // The backup itself is sound, but the store's wraps were changed (its other backups may not open
  // for every material) or, written by an older version, vouch for nothing: the operator must act,
  // and a warning in one command's output, or a scheduled run's, is easily missed.
  if (storeAlert) await alerts.raise('BackupGeneral', `Backup ${name}: ${storeAlert}`, name);
  await store.update((c) => ({
    ...c,
    lastBackupTime: record.CreatedDateTime,
    ...(record.Status !== 'Failed'
      ? {
          lastSuccessfulBackupTime: record.CreatedDateTime,
          lastBackupSize: record.Size,
          lastBackupDataSize: record.RoleStatus.reduce((n, r) => n + r.Size, 0),
        }
      : {}),
  }));
}

/** The backup stands as it is on the share; what this machine could not note of it is said. */
function unrecordedWarning(name: string, record: BackupRecord, e: unknown): string {
  const why = e instanceof Error ? e.message : String(e);
  const made = record.Status === 'Failed' ? 'ended' : `was made on the share (${record.Status})`;
  return (
    `Backup ${name} ${made}, but this machine could not keep its record of it in AZSBACKUP_HOME: ${why} ` +
    'Its job record, alerts or last backup time may be out of date (the schedule may take the backups as overdue). ' +
    'Make room in AZSBACKUP_HOME; the next backup records itself again.'
  );
}

/**
 * The share's deduplicating repository, with the keys this machine remembered for it (and keeps
 * new ones it was given). AZSBACKUP_STORE=full-copy makes every backup a full copy (format 2), as
 * before the repository existed: for a reader that only knows that format.
 */
async function backupRepository(
  store: ConfigStore,
  config: StoredConfig,
  location: string,
  target: Target,
  recipients: EncryptFor[],
): Promise<Omit<RepositoryForBackup, 'remember'>> {
  if (process.env.AZSBACKUP_STORE === 'full-copy') return {};
  const remembered = rememberedRepository(store, config, location);
  const { remember, ...found } = await repositoryForBackup(target, recipients, remembered, (created) =>
    rememberRepository(store, location, created),
  );
  if (remember) await rememberRepository(store, location, remember);
  return found;
}

async function failQueuedJob(home: string, name: string, e: unknown): Promise<void> {
  const message = e instanceof Error ? e.message : String(e);
  const jobs = new JobStore(home);
  const queued = jobs.get(name);
  if (queued) jobs.save({ ...queued, Status: 'Failed', Progress: `It could not start: ${message}` });
  const sinks = (() => {
    try {
      return new ConfigStore(home).read().alertSinks;
    } catch {
      return undefined; // the configuration itself is what failed; the alert is still recorded here
    }
  })();
  await new AlertStore(home, sinks).raise(
    isAzsError(e) && e.alertType ? e.alertType : 'BackupGeneral',
    `Backup ${name} could not start: ${message}`,
    name,
  );
}
