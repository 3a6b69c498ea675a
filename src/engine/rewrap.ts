import { Readable } from 'node:stream';
import { FORMAT_VERSION, REPOSITORY_FORMAT_VERSION, sealKeysFor, serializeBackupInfo } from '../catalog/backup-info.js';
import { INFO_FILE } from '../catalog/layout.js';
import { listShare, readBackupInfos } from '../catalog/share-catalog.js';
import { AzsError, ExitCode, isAzsError } from '../errors.js';
import {
  isWrappedFor,
  materialId,
  recipientId,
  recipientsMissing,
  wrapFor,
  wrappedForExactly,
  type DecryptWith,
  type EncryptFor,
  type WrappedKey,
} from '../crypto/recipient.js';
import type { Target } from '../targets/target.js';
import { recordFromInfo, type BackupRecord } from './backup-record.js';
import { runJob } from './job.js';
import { RepositoryLayout } from '../repository/layout.js';
import { deriveRepositoryKeys } from '../repository/keys.js';
import {
  readRepositoryConfig,
  rewrapRepository,
  unwrapMaster,
  wrapsAuthenticity,
  type RepositoryConfig,
} from '../repository/repository-config.js';
import { openBackup, type OpenOptions } from './open-backup.js';
import { killSwitchForTests } from './prune.js';

/**
 * After a rotation, wraps a backup's data key for the recipients configured now (every configured
 * certificate, or the key) in place of those it had, and re-seals BackupInfo.xml (in the current
 * format, with the authenticator of each certificate whose authentication secret is configured). The role files are not touched: their chunks are under
 * the data key, which does not change. `rewritten` is false when the backup was already as it
 * would be written.
 */
export async function rewrapBackup(
  target: Target,
  sharePath: string,
  name: string,
  oldMaterial: DecryptWith,
  recipients: readonly EncryptFor[],
  options: OpenOptions = {},
): Promise<{ record: BackupRecord; rewritten: boolean; wasAuthenticated: boolean }> {
  const { entry, info, parsed, dataKey, authenticity } = await openBackup(target, name, oldMaterial, options);
  refuseDowngrade(info.recipients, recipients, `Backup ${entry.name}`, entry.name);
  const wasAuthenticated = authenticity !== 'Unauthenticated';
  const sameRecipients = wrappedForExactly(info.recipients, recipients);
  const authenticatorMissing = recipients.some(
    (r) => r.kind === 'Certificate' && r.authenticationKey !== undefined && !parsed.authenticatorIds.includes(r.thumbprint.toUpperCase()),
  );
  // A full copy is re-sealed in the current full-copy format; a backup in the repository stays in its format.
  const formatVersion = info.repository ? REPOSITORY_FORMAT_VERSION : FORMAT_VERSION;
  if (sameRecipients && parsed.formatVersion === formatVersion && !authenticatorMissing) {
    return { record: recordFromInfo(info, sharePath), rewritten: false, wasAuthenticated };
  }
  const updated = { ...info, formatVersion, recipients: recipients.map((r) => wrapFor(r, dataKey!, entry.name)) };
  const text = serializeBackupInfo(updated, sealKeysFor(dataKey!, entry.name, entry.stamp, recipients));
  // Target.write replaces in one atomic step, so the backup never lacks its BackupInfo.xml (and
  // never lists as a leftover that a prune would remove), even if this process dies here. It only
  // replaces: a backup that a prune on another machine removed since it was read stays removed,
  // not made again as a folder holding BackupInfo.xml alone.
  try {
    await target.write(`${entry.folder}/${INFO_FILE}`, Readable.from([Buffer.from(text)]), { replaceOnly: true });
  } catch (e) {
    if (isAzsError(e) && e.errorId === 'TargetObjectNotFound') throw backupRemoved(entry.name, target.location, e);
    if (isAzsError(e) && e.errorId === 'ShareObjectRetained') throw backupHeld(entry.name, target.location, e);
    throw e;
  }
  return { record: recordFromInfo(updated, sharePath), rewritten: true, wasAuthenticated };
}

function backupRemoved(name: string, location: string, cause: unknown): AzsError {
  return new AzsError(`Backup ${name} was removed from ${location} (by a prune, say) while it was being re-wrapped.`, {
    errorId: 'BackupNotFound',
    category: 'ObjectNotFound',
    targetObject: name,
    recommendedAction: 'Nothing to do for this backup: it is no longer on the share. List the others with Get-InfrastructureBackup.',
    cause,
  });
}

/** A blob container that holds the backup's BackupInfo.xml as it is (a lease, a legal hold, an immutability policy). */
function backupHeld(name: string, location: string, cause: AzsError): AzsError {
  return new AzsError(
    `Backup ${name} was not re-wrapped: the storage keeps its BackupInfo.xml on ${location} from being replaced for now (an ` +
      'immutability policy, legal hold or lease), so it still opens only with the key or certificate it was wrapped for.',
    {
      errorId: cause.errorId,
      category: cause.category,
      targetObject: name,
      recommendedAction:
        `Keep that key or .pfx until this backup is re-wrapped: once its retention ends or the hold or lease is released, run ` +
        `Update-BackupEncryption -Name ${name} again.`,
      cause,
    },
  );
}

/**
 * SPEC 6: the host that backs up never holds the decryption secret; a symmetric key configured now
 * would put it back, so what is encrypted for a certificate is never re-wrapped for one.
 */
function refuseDowngrade(wrapped: readonly WrappedKey[], recipients: readonly EncryptFor[], what: string, targetObject: string): void {
  if (!isDowngrade(wrapped, recipients)) return;
  throw new AzsError(`${what} is encrypted for a certificate; re-wrapping it for the symmetric key configured now is refused.`, {
    errorId: 'EncryptionDowngradeRefused',
    category: 'InvalidOperation',
    exitCode: ExitCode.Usage,
    targetObject,
    recommendedAction: 'Configure a certificate (Set-BackupShare -EncryptionCertPath) and re-wrap for it instead.',
  });
}

const isDowngrade = (wrapped: readonly WrappedKey[], recipients: readonly EncryptFor[]): boolean =>
  recipients.some((r) => r.kind === 'Key') && wrapped.some((w) => w.kind === 'Certificate');

/** A backup in the share's repository, and the recipients its data key is wrapped for. */
interface StoredBackup {
  name: string;
  recipients: readonly WrappedKey[];
}

/**
 * Every backup on the share that the old material opens, or just `name`; the errors of those
 * whose BackupInfo.xml cannot be read, which must not keep the others from being re-wrapped; and,
 * without a name, the backups in the share's repository as read (`inRepository`), which the end of
 * the job needs to know which wraps of the repository they still need.
 */
export async function backupsToRewrap(
  target: Target,
  oldMaterial: DecryptWith,
  name?: string,
): Promise<{ names: string[]; unreadable: AzsError[]; inRepository?: StoredBackup[] }> {
  if (name) return { names: [name], unreadable: [] };
  const id = materialId(oldMaterial).toUpperCase();
  const { backups } = await listShare(target);
  const infos = await readBackupInfos(target, backups);
  const names: string[] = [];
  const unreadable: AzsError[] = [];
  const inRepository: StoredBackup[] = [];
  for (const [i, entry] of backups.entries()) {
    const read = infos[i]!;
    if (isAzsError(read)) {
      unreadable.push(read);
      continue;
    }
    if (read.info.recipients.some((r) => r.id.toUpperCase() === id)) names.push(entry.name);
    if (read.info.repository) inRepository.push({ name: entry.name, recipients: read.info.recipients });
  }
  return { names, unreadable, inRepository };
}

/**
 * How many backups on the share are not wrapped for every one of `recipientIds` (certificate
 * thumbprints or a key id): after a rotation, or a certificate added, those do not open with each
 * configured recipient's material until Update-BackupEncryption re-wraps them.
 */
export async function backupsNotWrappedFor(target: Target, recipientIds: readonly string[]): Promise<number> {
  const ids = recipientIds.map((id) => id.toUpperCase());
  const { backups } = await listShare(target);
  const infos = await readBackupInfos(target, backups);
  return infos.filter((read) => !isAzsError(read) && !ids.every((id) => read.info.recipients.some((r) => r.id.toUpperCase() === id)))
    .length;
}

/** Where the re-wrap works and for whom: the share and the recipients configured now. */
export interface RewrapLocation {
  target: Target;
  sharePath: string;
  /** The recipients configured now: every backup re-wrapped is wrapped for each. */
  recipients: readonly EncryptFor[];
}

export type RewrapJobRequest = {
  home: string;
  oldMaterial: DecryptWith;
  /** Just this backup, whose failure stops the job; without it, every backup the old material opens. */
  name?: string;
  allowUnauthenticated?: boolean;
  /** Asked before each backup (ShouldProcess): false leaves it as it is. */
  confirm: (name: string) => Promise<boolean>;
  /** Hears of each backup re-sealed though it carried no proof of who made it (-AllowUnauthenticated). */
  onUnauthenticated?: (name: string, rewritten: boolean) => void;
} & (
  | RewrapLocation
  /** Read under the job lock, as Update-BackupEncryption does from the configuration: see rewrapJob. */
  | { configured: () => Promise<RewrapLocation> }
);

export interface RewrapOutcome {
  /** How many backups the old material opens (or 1 with a name). */
  matched: number;
  updated: BackupRecord[];
  /** Those already wrapped for the recipients, as they would be written. */
  unchanged: string[];
  /** Backups whose BackupInfo.xml could not be read or re-wrapped. */
  failures: AzsError[];
  /**
   * The location's repository (whose master key every backup in it needs too): re-wrapped, already
   * wrapped for the recipients, absent, or not opened by the old material (then its error is a failure).
   */
  repository: 'Rewrapped' | 'Unchanged' | 'None' | 'NotOpened';
  /**
   * Without -Name: the recipients (other than those configured now) that the repository stays
   * wrapped for, since backups in it are still wrapped for them and not for the configured ones.
   */
  repositoryKeptFor: string[];
  /** Those backups (or, when some BackupInfo.xml could not be read, none: any of them may). */
  repositoryKeptBy: string[];
}

/**
 * The repository's master key wrapped for the recipients configured now, in place of those it had:
 * one small file, whatever the number of backups and chunks (the packs' keys derive from it).
 * `keep` names the wraps it had that stay (upper-case ids): every one with -Name, whose other backups
 * still open with the old material only; without, those that a backup left unwrapped for the
 * configured recipients needs. Returns the outcome and the wraps kept.
 */
async function rewrapRepositoryFor(
  target: Target,
  oldMaterial: DecryptWith,
  recipients: readonly EncryptFor[],
  keep: (id: string) => boolean,
  /**
   * Which wraps the backups need as listed after the write, when it dropped some: a backup another
   * machine committed since the job listed them (its job lock does not hold that machine off) may
   * be wrapped for the old material alone. Those wraps are written back.
   */
  neededNow?: () => Promise<(id: string) => boolean>,
): Promise<{ repository: RewrapOutcome['repository']; kept: string[] }> {
  const layout = new RepositoryLayout();
  const config = await readRepositoryConfig(target, layout);
  if (!config) return { repository: 'None', kept: [] };
  const configured = new Set(recipients.map((r) => recipientId(r).toUpperCase()));
  const others = config.recipients.map((w) => w.id.toUpperCase()).filter((id) => !configured.has(id));
  const kept = others.filter(keep);
  // Wraps that are not sealed (written before WrapsMac, or changed on the share) are written again
  // by whoever can: the old material's holder has the master key.
  // Unwrapped once (with a certificate, an RSA decryption) for both the check and the rewrite.
  let master: Buffer | undefined;
  const masterKey = (): Buffer => (master ??= unwrapMaster(config, oldMaterial));
  const sealed = () =>
    !isWrappedFor(oldMaterial, config.recipients) || wrapsAuthenticity(config, deriveRepositoryKeys(masterKey())) === 'Authentic';
  if (recipientsMissing(config.recipients, recipients).length === 0 && kept.length === others.length && sealed())
    return { repository: 'Unchanged', kept };
  refuseDowngrade(config.recipients, recipients, 'The repository', config.id);
  await rewrapRepository(target, layout, config, masterKey(), recipients, keep);
  if (kept.length === others.length || !neededNow) return { repository: 'Rewrapped', kept };
  const needed = await neededNow();
  const keptNow = others.filter((id) => keep(id) || needed(id));
  if (keptNow.length > kept.length) await rewrapRepository(target, layout, config, masterKey(), recipients, (id) => keptNow.includes(id));
  return { repository: 'Rewrapped', kept: keptNow };
}

/**
 * Which wraps of the repository the backups in it that this job left wrapped for something else than
 * the recipients need (upper-case ids): a backup whose data key only the old material unwraps needs
 * the master key under that material too, or nothing restores it. One whose BackupInfo.xml could not
 * be read may need any of them.
 */
function wrapsStillNeeded(
  inRepository: readonly StoredBackup[],
  rewrapped: ReadonlySet<string>,
  recipients: readonly EncryptFor[],
  unreadable: number,
): { keep: (id: string) => boolean; by: string[] } {
  if (unreadable > 0) return { keep: () => true, by: [] };
  const left = inRepository.filter((b) => !rewrapped.has(b.name) && recipientsMissing(b.recipients, recipients).length > 0);
  const ids = new Set(left.flatMap((b) => b.recipients.map((w) => w.id.toUpperCase())));
  return { keep: (id) => ids.has(id), by: left.map((b) => b.name) };
}

/**
 * Before the first backup is re-wrapped, the repository's master key is wrapped for the recipients
 * too, keeping the wraps it had: a re-wrapped backup in it then opens with the new material, one
 * not re-wrapped yet with the old, so a job killed or failing between two writes never leaves a
 * backup that neither restores (its data key under the new material only, the master key its
 * chunks need under the old only). The end of the job drops the old wraps. A write that fails here
 * ends the job with nothing changed; a config the old material does not open is left to that end,
 * which reports it.
 */
async function wrapRepositoryAlsoFor(target: Target, oldMaterial: DecryptWith, recipients: readonly EncryptFor[]): Promise<void> {
  const layout = new RepositoryLayout();
  let config: RepositoryConfig | undefined;
  let master: Buffer;
  try {
    config = await readRepositoryConfig(target, layout);
    if (!config || recipientsMissing(config.recipients, recipients).length === 0) return;
    if (!isWrappedFor(oldMaterial, config.recipients) || isDowngrade(config.recipients, recipients)) return;
    master = unwrapMaster(config, oldMaterial);
  } catch (e) {
    if (isAzsError(e) && e.errorId === 'RepositoryConfigDamaged') return;
    throw e;
  }
  await rewrapRepository(target, layout, config, master, recipients, true);
}

/**
 * Re-wrapping as a job (Update-BackupEncryption), under the job lock. One damaged backup is
 * reported and the others are still re-wrapped: an operator who retires the old material must see
 * exactly which backups it still opens alone.
 */
export async function rewrapJob(request: RewrapJobRequest): Promise<RewrapOutcome> {
  return runJob(request.home, 'update encryption', async () => {
    // The share and recipients from the configuration are read under the lock: a Set-BackupShare
    // changes them only under it, and one that ran just before must not leave this job re-wrapping
    // for the recipients it replaced.
    const location = 'configured' in request ? await request.configured() : request;
    const job = { ...request, ...location, target: killSwitchForTests(location.target, 'AZSBACKUP_TEST_REWRAP_KILL_AFTER') };
    const options = { allowUnauthenticated: job.allowUnauthenticated };
    const { names, unreadable, inRepository } = await backupsToRewrap(job.target, job.oldMaterial, job.name);
    const outcome: RewrapOutcome = {
      matched: names.length,
      updated: [],
      unchanged: [],
      failures: [...unreadable],
      repository: 'None',
      repositoryKeptFor: [],
      repositoryKeptBy: [],
    };

    let repositoryCovered = false;
    const rewrapped = new Set<string>();
    for (const name of names) {
      if (!(await job.confirm(name))) continue;
      if (!repositoryCovered) {
        await wrapRepositoryAlsoFor(job.target, job.oldMaterial, job.recipients);
        repositoryCovered = true;
      }
      try {
        const { record, rewritten, wasAuthenticated } = await rewrapBackup(
          job.target,
          job.sharePath,
          name,
          job.oldMaterial,
          job.recipients,
          options,
        );
        if (!wasAuthenticated) job.onUnauthenticated?.(name, rewritten);
        rewrapped.add(name);
        outcome.updated.push(record);
        if (!rewritten) outcome.unchanged.push(name);
      } catch (e) {
        if (job.name !== undefined || !isAzsError(e)) throw e;
        outcome.failures.push(e);
      }
    }
    // After the backups: one the old material opens goes with its repository; none, and the
    // repository is re-wrapped only if that material opens it (a share whose backups were all pruned).
    // The wraps it had go only when no backup in it needs them any more (a backup declined, refused,
    // or made for other material than the old is left as it was).
    if (outcome.updated.length > 0 || names.length === 0) {
      const needed = inRepository
        ? wrapsStillNeeded(inRepository, rewrapped, job.recipients, unreadable.length)
        : { keep: () => true, by: [] };
      // The backups listed again once the wraps are written (see rewrapRepositoryFor): those it names keep them.
      const neededNow = async (): Promise<(id: string) => boolean> => {
        const now = await backupsToRewrap(job.target, job.oldMaterial);
        const still = wrapsStillNeeded(now.inRepository ?? [], rewrapped, job.recipients, now.unreadable.length);
        needed.by = [...new Set([...needed.by, ...still.by])];
        return still.keep;
      };
      try {
        const { repository, kept } = await rewrapRepositoryFor(
          job.target,
          job.oldMaterial,
          job.recipients,
          needed.keep,
          inRepository ? neededNow : undefined,
        );
        outcome.repository = repository;
        if (inRepository && kept.length > 0) [outcome.repositoryKeptFor, outcome.repositoryKeptBy] = [kept, needed.by];
      } catch (e) {
        if (!isAzsError(e) || e.alertType) throw e;
        outcome.repository = 'NotOpened';
        if (outcome.updated.length > 0) outcome.failures.push(e);
      }
    }
    return outcome;
  });
}
