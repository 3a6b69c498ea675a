import { pipeline, type Readable, Writable } from 'node:stream';
import { AzsError, isAzsError } from '../errors.js';
import { listShare } from '../catalog/share-catalog.js';
import type { DecryptWith } from '../crypto/recipient.js';
import { CHUNK_HEADER_BYTES, CHUNK_TAG_BYTES } from '../pipeline/chunk-cipher.js';
import { openRoleStream } from '../pipeline/role-stream.js';
import type { ProgressReporter } from '../progress.js';
import { canRecycle } from '../memory/recycling-readable.js';
import type { Target } from '../targets/target.js';
import { openBackup, type Authenticity, type OpenedBackup } from './open-backup.js';
import { createVerifyTap } from './verify-tap.js';
import { readCatalogFrom, type Catalog } from '../repository/catalog.js';
import type { RepositoryKeys } from '../repository/keys.js';
import { RepositoryLayout } from '../repository/layout.js';
import type { PackEntry } from '../repository/pack-format.js';
import { repositoryConfigFor, repositoryForReading } from './repository-access.js';
import { checkPack } from './pack-check.js';

/**
 * Checks a backup without restoring it. Keyless: BackupInfo.xml's digest and every stored file's
 * size and SHA-256, and (format 3) every pack BackupInfo.xml names present and hashing to its
 * name, and the repository's config.xml the one BackupInfo.xml names (id and public key). With the decryption material: also BackupInfo.xml's authentication code and every chunk
 * decrypted and authenticated (the plaintext is discarded): a full copy's role files, or (format 3)
 * the catalogs and every chunk they list, read from the packs.
 */

export interface FileCheckRecord {
  RoleName: string;
  File: string;
  Succeeded: boolean;
  Message: string;
}

export interface BackupTestRecord {
  Name: string;
  Mode: 'Hash' | 'Authenticated';
  IsValid: boolean;
  /** Files of the backup's own folder checked: BackupInfo.xml and its role files or catalogs. */
  FilesChecked: number;
  /** Format 3: packs of the repository the backup needs, checked (0 for a full copy). */
  PacksChecked: number;
  ChunksAuthenticated: number;
  /** NotChecked without material; else how the backup was proven ours (Key, Certificate), or Unauthenticated under -AllowUnauthenticated. */
  Authenticity: Authenticity | 'NotChecked';
  /** What the check can and cannot tell, in words. */
  Checked: string;
  Files: FileCheckRecord[];
}

const CHECKED = {
  Hash:
    'Integrity only: every stored file against the size and SHA-256 that BackupInfo.xml records, and BackupInfo.xml against its digest. ' +
    'This finds damage, not forgery: anyone who can write to the share can make a backup that passes. Give the key or the .pfx to ' +
    'check who made it.',
  Authenticated:
    "Authenticity and integrity: BackupInfo.xml proven to come from a holder of the key or of the certificate's authentication secret, " +
    'and every chunk of every role decrypted and authenticated.',
  /** Added to Hash for a backup in the repository (format 3). */
  HashPacks:
    " Every pack of the repository that BackupInfo.xml names was read: it is there and its bytes hash to its name; and the repository's " +
    'config.xml is there, readable, of the repository and the key that BackupInfo.xml names (its wraps are not opened).',
  Unauthenticated:
    'Integrity under the decryption material, but NOT who made the backup (-AllowUnauthenticated): every chunk decrypted and ' +
    'authenticated under a data key that anyone holding the public certificate could have wrapped.',
};

export interface VerifyOptions {
  /** Checks a certificate-mode backup that carries no authenticator (OpenOptions). */
  allowUnauthenticated?: boolean;
}

/** The end of a check: drops every chunk, handing it back to the stream that made it where it can take it. */
const discard = (recycle?: (chunk: Buffer) => void) =>
  new Writable({
    write(chunk: Buffer, _e, done) {
      recycle?.(chunk);
      done();
    },
  });

/** What a check has found so far. */
interface CheckState {
  files: FileCheckRecord[];
  /** Files of the backup's folder checked (BackupInfo.xml, role files, catalogs). */
  filesChecked: number;
  packsChecked: number;
  chunks: number;
  authenticity: BackupTestRecord['Authenticity'];
}

/** A role's catalog as the keyed check of a format 3 backup opened it. */
export interface RoleCatalog {
  role: string;
  catalog: Catalog;
}

export async function verifyBackup(
  target: Target,
  name: string,
  material: DecryptWith | undefined,
  progress: ProgressReporter,
  options: VerifyOptions = {},
): Promise<BackupTestRecord> {
  const { state, opened, catalogs } = await checkFolder(target, name, material, progress, options);
  if (!opened) return recordOf(name, material, state);
  if (opened.info.repository) await checkPacksOf(target, opened, material, catalogs, state, progress);
  progress.report({ activity: `Test ${opened.entry.name}`, status: 'Done', percentComplete: 100, id: 0, completed: true });
  const record = recordOf(name, material, state);
  if (!record.IsValid) await stillListed(target, opened.entry.name);
  return record;
}

/**
 * A backup found wanting is checked to be still on the share: a prune on another machine (this
 * machine's job lock holds off its own) may have removed it, past its retention there, and the
 * packs only it needed while it was read. That is no damage, and is said as what it is.
 */
async function stillListed(target: Target, name: string): Promise<void> {
  const wanted = name.toLowerCase();
  const listed = await listShare(target).then(
    (l) => l.backups.some((b) => b.name === wanted),
    () => true, // the share cannot tell: the findings stand
  );
  if (listed) return;
  throw new AzsError(
    `Backup ${name} was removed from ${target.location} while it was being checked (by a prune on another machine, the backup being past the retention period there).`,
    {
      errorId: 'BackupNotFound',
      category: 'ObjectNotFound',
      targetObject: name,
      recommendedAction: 'List the backups left with Get-InfrastructureBackup, and check or restore one of those.',
    },
  );
}

/** A backup's own folder checked, as verifyBackup does before the packs (Test-BackupRepository checks packs once for all backups). */
export interface FolderCheck {
  record: BackupTestRecord;
  /** Undefined when BackupInfo.xml could not be read or proven. */
  opened?: OpenedBackup;
  /** Format 3 with the material: each role's catalog, opened. */
  catalogs: RoleCatalog[];
}

export async function checkBackupFolder(
  target: Target,
  name: string,
  material: DecryptWith | undefined,
  progress: ProgressReporter,
  options: VerifyOptions = {},
): Promise<FolderCheck> {
  const { state, opened, catalogs } = await checkFolder(target, name, material, progress, options);
  return { record: recordOf(name, material, state), opened, catalogs };
}

async function checkFolder(
  target: Target,
  name: string,
  material: DecryptWith | undefined,
  progress: ProgressReporter,
  options: VerifyOptions,
): Promise<{ state: CheckState; opened?: OpenedBackup; catalogs: RoleCatalog[] }> {
  const state: CheckState = { files: [], filesChecked: 0, packsChecked: 0, chunks: 0, authenticity: 'NotChecked' };
  let opened: OpenedBackup;
  try {
    opened = await openBackup(target, name, material, options);
    state.authenticity = opened.authenticity ?? 'NotChecked';
  } catch (e) {
    // Material meant for another backup says nothing about this backup's health: report it as such.
    if (!isAzsError(e) || e.errorId === 'BackupNotFound' || e.errorId === 'WrongDecryptionMaterial' || e.alertType) throw e;
    state.files.push({ RoleName: '', File: 'BackupInfo.xml', Succeeded: false, Message: e.message });
    state.filesChecked++;
    return { state, catalogs: [] };
  }
  state.files.push(infoRecord(opened, state.authenticity));
  state.filesChecked++;
  return { state, opened, catalogs: await checkStoredFiles(target, opened, state, progress) };
}

function recordOf(name: string, material: DecryptWith | undefined, state: CheckState): BackupTestRecord {
  const { authenticity } = state;
  return {
    Name: name.toLowerCase(),
    Mode: material ? 'Authenticated' : 'Hash',
    IsValid: state.files.every((f) => f.Succeeded),
    FilesChecked: state.filesChecked,
    PacksChecked: state.packsChecked,
    ChunksAuthenticated: state.chunks,
    Authenticity: authenticity,
    Checked: !material
      ? `${CHECKED.Hash}${state.packsChecked > 0 ? CHECKED.HashPacks : ''}`
      : authenticity === 'Unauthenticated'
        ? CHECKED.Unauthenticated
        : CHECKED.Authenticated,
    Files: state.files,
  };
}

function infoRecord({ parsed, dataKey }: OpenedBackup, authenticity: CheckState['authenticity']): FileCheckRecord {
  return {
    RoleName: '',
    File: 'BackupInfo.xml',
    Succeeded: parsed.digestValid,
    Message: !parsed.digestValid
      ? 'its digest does not match: the file was changed'
      : authenticity === 'Unauthenticated'
        ? "digest and data key's authentication code match; who made it is NOT proven (-AllowUnauthenticated)"
        : dataKey
          ? `digest and authentication code match; made by a holder of the ${authenticity === 'Key' ? 'key' : "certificate's authentication secret"}`
          : 'digest matches (integrity only, not who made it)',
  };
}

/** Every file of the backup's folder: role files (format 1-2) or catalogs (format 3); the opened catalogs with the key. */
async function checkStoredFiles(
  target: Target,
  opened: OpenedBackup,
  state: CheckState,
  progress: ProgressReporter,
): Promise<RoleCatalog[]> {
  const { entry, info, dataKey } = opened;
  const catalogs: RoleCatalog[] = [];
  const stored = info.roles.flatMap((role) => role.files.map((file) => ({ role, file })));
  for (const [i, { role, file }] of stored.entries()) {
    progress.report({
      activity: `Test ${entry.name}`,
      status: `${role.definition.name}: ${file.name}`,
      percentComplete: Math.floor((i / stored.length) * (info.repository ? 10 : 100)),
      id: 0,
    });
    const roleName = role.definition.name;
    state.filesChecked++;
    try {
      const source = await target.read(`${entry.folder}/${file.name}`);
      const stages = [source, createVerifyTap(file, entry.name)];
      const opening = dataKey ? openRoleStream({ dataKey, backupName: entry.name, roleName, fileName: file.name }) : undefined;
      if (opening) {
        // The tap hashes each chunk as it passes, so once the opener has read one through, nothing holds it.
        if (canRecycle(source)) opening.handInputBackTo(source.recycle);
        stages.push(opening);
      }
      if (opening && info.repository) {
        const catalog = await readCatalogFrom(file.name, pipeline(stages, () => {}) as unknown as Readable);
        catalogs.push({ role: roleName, catalog });
        const message = `catalog authenticated: ${catalog.chunks.length} chunks, ${catalog.streamLength} bytes`;
        state.files.push({ RoleName: roleName, File: file.name, Succeeded: true, Message: message });
        continue;
      }
      await new Promise<void>((resolve, reject) => pipeline([...stages, discard(opening?.recycle)], (e) => (e ? reject(e) : resolve())));
      if (dataKey) state.chunks += Math.max(1, Math.ceil((file.size - CHUNK_HEADER_BYTES) / (info.chunkSize + CHUNK_TAG_BYTES)));
      const message = dataKey ? 'every chunk authenticated' : 'size and SHA-256 match';
      state.files.push({ RoleName: roleName, File: file.name, Succeeded: true, Message: message });
    } catch (e) {
      if (isAzsError(e) && e.alertType) throw e;
      state.files.push({ RoleName: roleName, File: file.name, Succeeded: false, Message: (e as Error).message });
    }
  }
  return catalogs;
}

/** A pack the backup needs: the roles whose chunks lie in it, and those chunks by offset with how often the catalogs list each. */
interface PackPlan {
  roles: Set<string>;
  wanted: Map<number, { entry: PackEntry; refs: number }>;
}

/** Every pack BackupInfo.xml names, and every pack the opened catalogs place a chunk in (which BackupInfo.xml must name). */
function planPacks(named: readonly string[], catalogs: readonly RoleCatalog[], state: CheckState): Map<string, PackPlan> {
  const plan = new Map<string, PackPlan>(named.map((p) => [p, { roles: new Set<string>(), wanted: new Map() }]));
  for (const { role, catalog } of catalogs) {
    const unnamed = new Set<string>();
    for (const c of catalog.chunks) {
      let p = plan.get(c.pack);
      if (!p) {
        unnamed.add(c.pack);
        p = { roles: new Set<string>(), wanted: new Map() };
        plan.set(c.pack, p);
      }
      p.roles.add(role);
      const known = p.wanted.get(c.offset);
      if (known) known.refs++;
      else p.wanted.set(c.offset, { entry: c, refs: 1 });
    }
    for (const pack of unnamed) {
      state.files.push({
        RoleName: role,
        File: `${repositoryLayout.packPath(pack)}`,
        Succeeded: false,
        Message: `the catalog of role ${role} places chunks in pack ${pack}, which BackupInfo.xml does not name (a prune would not keep it)`,
      });
    }
  }
  return plan;
}

const repositoryLayout = new RepositoryLayout();

/**
 * Format 3: every pack the backup needs is present and hashes to its name; with the material,
 * every chunk its catalogs list is read from its pack and authenticated as its id, each pack
 * streamed once (one pass checks both). A pack that fails is reported for each role needing it.
 */
async function checkPacksOf(
  target: Target,
  opened: OpenedBackup,
  material: DecryptWith | undefined,
  catalogs: RoleCatalog[],
  state: CheckState,
  progress: ProgressReporter,
): Promise<void> {
  const reference = opened.info.repository!;
  let keys: RepositoryKeys | undefined;
  try {
    // Without the material, still what every restore of the backup needs first: the repository's config.xml.
    if (material) keys = (await repositoryForReading(target, reference, material)).keys;
    else await repositoryConfigFor(target, reference);
  } catch (e) {
    if (!isAzsError(e) || e.errorId === 'WrongDecryptionMaterial' || e.alertType) throw e;
    state.files.push({ RoleName: '', File: `${repositoryLayout.root}/config.xml`, Succeeded: false, Message: e.message });
    // The packs need no key to be checked against their names: the keyless check goes on.
    if (material) return;
  }
  const plan = planPacks(reference.packs, catalogs, state);
  const packs = [...plan.keys()].sort();
  let sound = 0;
  let bytes = 0;
  for (const [i, pack] of packs.entries()) {
    progress.report({
      activity: `Test ${opened.entry.name}`,
      status: `pack ${i + 1} of ${packs.length}`,
      percentComplete: 10 + Math.floor((i / packs.length) * 90),
      id: 0,
    });
    const { roles, wanted } = plan.get(pack)!;
    const entries = [...wanted.values()].map((w) => w.entry);
    const checked = await checkPack(target, repositoryLayout, pack, keys, entries, (e) => {
      state.chunks += wanted.get(e.offset)?.refs ?? 0;
    });
    state.packsChecked++;
    if (!checked.error) {
      sound++;
      bytes += checked.size ?? 0;
      continue;
    }
    const needers = roles.size ? [...roles].sort() : [''];
    for (const role of needers) {
      const message = role ? `role ${role} needs this pack: ${checked.error.message}` : checked.error.message;
      state.files.push({ RoleName: role, File: repositoryLayout.packPath(pack), Succeeded: false, Message: message });
    }
  }
  if (sound > 0 || packs.length === 0) {
    state.files.push({
      RoleName: '',
      File: repositoryLayout.packsFolder,
      Succeeded: true,
      Message:
        `${sound} of the ${packs.length} packs the backup needs present and hashing to their names (${bytes} bytes)` +
        (keys ? `; ${state.chunks} chunks read from them and authenticated` : ''),
    });
  }
}
