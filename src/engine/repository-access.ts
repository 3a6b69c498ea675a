import type { RepositoryReference } from '../catalog/backup-info.js';
import type { ConfigStore, StoredConfig } from '../config/store.js';
import { isWrappedFor, recipientsMissing, type DecryptWith, type EncryptFor } from '../crypto/recipient.js';
import { AzsError, ExitCode, isAzsError } from '../errors.js';
import { listShare, readBackupInfos } from '../catalog/share-catalog.js';
import { openBackup } from './open-backup.js';
import { deriveRepositoryKeys, hostKeysFrom, hostKeysOf, type RepositoryHostKeys, type RepositoryKeys } from '../repository/keys.js';
import { RepositoryLayout } from '../repository/layout.js';
import {
  createRepository,
  configDamaged,
  keyFingerprint,
  readRepositoryConfig,
  rewrapRepository,
  unwrapMaster,
  wrapsAuthenticity,
  type RepositoryConfig,
} from '../repository/repository-config.js';
import type { Target } from '../targets/target.js';

/**
 * The location's deduplicating repository as the engine uses it: for a backup with the keys the
 * backup host keeps (it adds chunks it cannot read back), for a restore or a keyed check with
 * every key, unwrapped with the operator's material.
 */
export interface OpenRepository {
  id: string;
  fingerprint: string;
  keys: RepositoryKeys;
  layout: RepositoryLayout;
}

/** What this machine remembers of a repository between backups (sealed in its configuration). */
export interface RememberedRepository extends RepositoryHostKeys {
  id: string;
  /** Its config.xml's wraps were seen sealed: from then on one without the seal was tampered with. */
  wrapsSealed?: true;
}

export interface RepositoryForBackup {
  repository?: OpenRepository;
  /** Set when the host keys are new to this machine (or what it knows of them): the caller keeps them. */
  remember?: RememberedRepository;
  /** Why the backup is a full copy instead (the operator can act on it). */
  fullCopyBecause?: string;
  /** config.xml's wraps were changed by someone without the repository's keys: an alert, not only a warning. */
  wrapsTampered?: boolean;
  /** The store is used, but its wraps carry no seal (an older version wrote them) and certificates open it: what the operator must do once. */
  wrapsUnsealed?: string;
}

/**
 * The wraps of config.xml do not carry the seal that every writer holding the master key puts on
 * them: someone who can write to the share changed them (added a wrap of nothing for a certificate,
 * spoiled one, or took the seal away). The store may then not open for every configured recipient,
 * so this backup is a full copy, which each of them opens.
 */
function wrapsTampered(config: RepositoryConfig): string {
  const claims = config.recipients.map((w) => w.id).join(', ');
  return (
    `The wraps of the share's deduplicating store (AzsRepository/config.xml, said to open with ${claims}) were changed by someone ` +
    'without its keys, so this backup is a full copy, which each configured certificate or key opens. Backups in the store may no ' +
    'longer open with every material: check each with Test-InfrastructureBackup and its .pfx or key. Then write the wraps again with ' +
    'a material that opens the store: Set-BackupShare -DecryptionCertPath with its .pfx, or Update-BackupEncryption; and find out who ' +
    'can write to the share.'
  );
}

/**
 * A store whose master key is not wrapped for every recipient configured now (a rotation, a
 * certificate added) would hold backups that the new material alone cannot restore. Until it is
 * re-wrapped, backups are full copies, which that material alone restores, as before the store.
 */
function notOpenedFor(missing: string[], config: RepositoryConfig): string | undefined {
  if (missing.length === 0) return undefined;
  const opens = config.recipients.map((w) => w.id).join(', ');
  return (
    `The share's deduplicating store is not encrypted for ${missing.join(', ')}, so this backup is a full copy (which ` +
    `${missing.length === 1 ? 'its' : 'their'} material alone restores). To store only what changes again, re-wrap the store: ` +
    `Update-BackupEncryption with the material it is encrypted for (${opens}), or, for a certificate, Set-BackupShare ` +
    '-DecryptionCertPath with its .pfx.'
  );
}

/**
 * A store whose config.xml an AzsBackup before WrapsMac wrote is used as before (a full copy each
 * time would fill the share of every machine upgraded), but its wraps vouch for nothing: a writer
 * of the share may have put a wrap of nothing in place of the break-glass certificate's, and the
 * host, holding no private key, cannot see it. Only a material that opens the store writes them
 * again, sealed, so the operator is told, backup after backup, until one does.
 */
function wrapsUnsealed(config: RepositoryConfig): string {
  return (
    `The wraps of the share's deduplicating store (AzsRepository/config.xml, said to open with ${config.recipients.map((w) => w.id).join(', ')}) ` +
    'are not sealed: an AzsBackup version before their seal (WrapsMac) wrote them, and this machine, which holds no .pfx, cannot tell ' +
    "whether someone who can write to the share changed one since (a wrap of nothing in place of the break-glass certificate's would " +
    'leave this and later backups unrestorable with that .pfx). Give a .pfx that opens the store once, which writes them again, sealed: ' +
    'Set-BackupShare -DecryptionCertPath <.pfx> -DecryptionCertPassword -, or Update-BackupEncryption with it.'
  );
}

const layout = new RepositoryLayout();

/** Where the sealed host secret of the share's repository is bound in the configuration. */
export const REPOSITORY_SECRET_CONTEXT = 'repository-host-secret';

/**
 * The keys this machine remembered (config.json `repository`) for the repository of the share at
 * `location`, if any; without a location, for whichever share (a check uses them only for a
 * repository of the same id and public key, however the share is reached).
 */
export function rememberedRepository(store: ConfigStore, config: StoredConfig, location?: string): RememberedRepository | undefined {
  const known = location === undefined || config.repository?.location === location ? config.repository : undefined;
  return (
    known && {
      id: known.id,
      publicKey: Buffer.from(known.publicKey, 'base64'),
      hostSecret: Buffer.from(store.open(known.hostSecret, REPOSITORY_SECRET_CONTEXT), 'base64'),
      ...(known.wrapsSealed ? { wrapsSealed: true as const } : {}),
    }
  );
}

/** What config.json keeps of the repository at `location`: its host keys, the secret sealed. */
export function repositoryToKeep(store: ConfigStore, location: string, remember: RememberedRepository): StoredConfig['repository'] {
  const sealed = store.seal(remember.hostSecret.toString('base64'), REPOSITORY_SECRET_CONTEXT);
  return {
    location,
    id: remember.id,
    publicKey: remember.publicKey.toString('base64'),
    hostSecret: sealed,
    ...(remember.wrapsSealed ? { wrapsSealed: true as const } : {}),
  };
}

/** Keeps the host keys of the repository at `location` (sealed), in place of any kept before. */
export async function rememberRepository(store: ConfigStore, location: string, remember: RememberedRepository): Promise<void> {
  const repository = repositoryToKeep(store, location, remember);
  await store.update((c) => ({ ...c, repository }));
}

/**
 * Given a .pfx (Set-BackupShare -DecryptionCertPath), takes the host keys of the share's
 * repository when its master key is wrapped for that certificate: a machine set up with the
 * certificate alone could not, and would back up full copies. And since a certificate added to
 * the configuration opens nothing in a store whose master key was not wrapped for it, the master
 * key is then also wrapped for every recipient configured now (keeping the wraps it had, which
 * older backups need). Undefined when there is no repository yet (the first backup makes one, for
 * every recipient), none of the material opens it, or no backup proves it ours (provenRepository).
 */
export async function joinRepository(
  target: Target,
  materials: readonly DecryptWith[],
  recipients: readonly EncryptFor[],
): Promise<{ remember: RememberedRepository; wrappedFor: string[] } | undefined> {
  const config = await readRepositoryConfig(target, layout);
  if (!config) return undefined;
  for (const material of materials) {
    if (!isWrappedFor(material, config.recipients)) continue;
    const master = unwrapMaster(config, material);
    if (!(await provenRepository(target, config, material))) return undefined;
    const missing = recipientsMissing(config.recipients, recipients);
    // Written again also when its wraps are not sealed (made before WrapsMac) or not as sealed:
    // the configured recipients' wraps are made anew, so one spoiled on the share is replaced.
    const host = hostKeysOf(master);
    if (missing.length || wrapsAuthenticity(config, hostKeysFrom(host)) !== 'Authentic')
      await rewrapRepository(target, layout, config, master, recipients, true);
    return { remember: { id: config.id, ...host, wrapsSealed: true }, wrappedFor: missing };
  }
  return undefined;
}

/**
 * config.xml's seal (WrapsMac) is made with its own master key, so it proves nothing about whose
 * store it is, and anyone with a certificate's public .cer can wrap a master key of their own for it: a store whose config was replaced so would, once joined, receive every later
 * backup under a key its author holds. So a store is joined only when a backup that this material
 * authenticates (made by a holder of the key or of the certificate's authentication secret) names
 * it, by id and by its key's fingerprint.
 */
async function provenRepository(target: Target, config: RepositoryConfig, material: DecryptWith): Promise<boolean> {
  const { backups } = await listShare(target);
  const infos = await readBackupInfos(target, backups);
  const fingerprint = keyFingerprint(config.publicKey);
  for (const [i, read] of infos.entries()) {
    if (isAzsError(read) || read.info.repository?.id !== config.id || read.info.repository.keyFingerprint !== fingerprint) continue;
    const proven = await openBackup(target, backups[i]!.name, material).then(
      (opened) => opened.authenticity !== 'Unauthenticated',
      () => false,
    );
    if (proven) return true;
  }
  return false;
}

function opened(id: string, keys: RepositoryKeys): OpenRepository {
  return { id, fingerprint: keyFingerprint(keys.publicKey), keys, layout };
}

/**
 * The repository a backup adds to. The first backup creates it (its master key wrapped for the
 * recipients, and forgotten once the host keys are taken). Later backups use the keys this machine
 * remembered, never the public key the share offers (a replaced config would otherwise receive new
 * data). A machine that has none yet takes them with the symmetric key; with a certificate it cannot
 * (only the .pfx unwraps), so that backup is a full copy, as before the repository existed.
 */
export async function repositoryForBackup(
  target: Target,
  recipients: readonly EncryptFor[],
  remembered?: RememberedRepository,
  /**
   * Keeps the host keys of a repository this backup creates, before the share shows it: killed
   * after that, a machine with a certificate alone could never take them again (only the .pfx
   * unwraps, and it joins only a store a committed backup names).
   */
  keep?: (remember: RememberedRepository) => Promise<void>,
): Promise<RepositoryForBackup> {
  const config = await readRepositoryConfig(target, layout);
  if (!config) {
    let kept: RememberedRepository | undefined;
    const created = await createRepository(target, layout, recipients, async (made, master) => {
      kept = { id: made.id, ...hostKeysOf(master), wrapsSealed: true };
      await keep?.(kept);
    });
    if (created.master && kept) {
      return { repository: opened(created.config.id, hostKeysFrom(kept)), ...(keep ? {} : { remember: kept }) };
    }
    return repositoryForBackup(target, recipients, remembered, keep); // another writer created it first
  }
  const notOpened = notOpenedFor(recipientsMissing(config.recipients, recipients), config);
  if (notOpened) return { fullCopyBecause: notOpened };
  if (remembered?.id === config.id) {
    const keys = hostKeysFrom(remembered);
    const wraps = wrapsAuthenticity(config, keys);
    if (wraps === 'Tampered' || (wraps === 'Unsealed' && remembered.wrapsSealed))
      return { fullCopyBecause: wrapsTampered(config), wrapsTampered: true };
    return {
      repository: opened(config.id, keys),
      ...(wraps === 'Authentic' && !remembered.wrapsSealed ? { remember: { ...remembered, wrapsSealed: true as const } } : {}),
      // With a symmetric key the host opens the store itself, and no certificate's wrap could be spoiled unseen.
      ...(wraps === 'Unsealed' && recipients.some((r) => r.kind === 'Certificate') ? { wrapsUnsealed: wrapsUnsealed(config) } : {}),
    };
  }
  const key = recipients.find((r): r is Extract<EncryptFor, { kind: 'Key' }> => r.kind === 'Key');
  if (key && isWrappedFor(key, config.recipients)) {
    const host = hostKeysOf(unwrapMaster(config, key));
    const wraps = wrapsAuthenticity(config, hostKeysFrom(host));
    if (wraps === 'Tampered') return { fullCopyBecause: wrapsTampered(config), wrapsTampered: true };
    return {
      repository: opened(config.id, hostKeysFrom(host)),
      remember: { id: config.id, ...host, ...(wraps === 'Authentic' ? { wrapsSealed: true as const } : {}) },
    };
  }
  return {
    fullCopyBecause:
      `The share's deduplicating repository ${config.id} was made on another machine or for another key, and this machine cannot open it ` +
      'with a certificate alone: this backup is a full copy. Give the .pfx once (Set-BackupShare -DecryptionCertPath) so later backups ' +
      'store only what changed.',
  };
}

/** The repository a format 3 backup names, with every key: the master key unwrapped and checked against the backup's record. */
export async function repositoryForReading(target: Target, reference: RepositoryReference, material: DecryptWith): Promise<OpenRepository> {
  const config = await repositoryConfigFor(target, reference);
  const keys = deriveRepositoryKeys(unwrapMaster(config, material, reference.keyFingerprint));
  return opened(config.id, keys);
}

/**
 * The share's config.xml, when it is the one a backup's chunks need: present, readable, of the
 * repository and the public key its BackupInfo.xml names. No key is needed to see that, so a
 * keyless check finds what would stop every restore of the backup.
 */
export async function repositoryConfigFor(target: Target, reference: RepositoryReference): Promise<RepositoryConfig> {
  const config = await readRepositoryConfig(target, layout);
  if (!config || config.id !== reference.id) {
    throw new AzsError(
      `The backup's chunks are in repository ${reference.id}, but the share ${config ? `holds repository ${config.id}` : 'has no repository'} (AzsRepository/config.xml).`,
      {
        errorId: 'RepositoryMissing',
        category: 'ObjectNotFound',
        exitCode: ExitCode.Integrity,
        targetObject: reference.id,
        recommendedAction:
          'Point Set-BackupShare at the share the backup was made on, with its AzsRepository folder; restore another backup otherwise.',
      },
    );
  }
  if (keyFingerprint(config.publicKey) !== reference.keyFingerprint)
    throw configDamaged('its key is not the one the backup was made with (the file was replaced)');
  return config;
}

/** The repository's keys for adding and indexing, from the master key (tests; Set-BackupShare with the .pfx). */
export function rememberFromMaster(id: string, master: Buffer): RememberedRepository {
  return { id, ...hostKeysOf(master) };
}
