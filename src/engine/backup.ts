import { randomUUID } from 'node:crypto';
import { pipeline, Readable, type Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { AzsError, ExitCode, isAzsError } from '../errors.js';
import {
  serializeBackupInfo,
  sealKeysFor,
  BACKUP_DATA_VERSION,
  type BackupInfo,
  type RepositoryReference,
  type RoleRecord,
} from '../catalog/backup-info.js';
import { removeBackup, removeIfEmpty } from '../catalog/share-catalog.js';
import { seconds, tracedTarget } from './traced-target.js';
import { INFO_FILE, ROOT, backupFolder, catalogFileName, partialFolder, roleFileName, stampOf } from '../catalog/layout.js';
import { newDataKey } from '../crypto/key-wrap.js';
import { unauthenticatedCertificateWarning } from '../crypto/certificate-authentication.js';
import { recipientLabel, wrapFor, type EncryptFor } from '../crypto/recipient.js';
import { recycleThrough, recyclerOf } from '../memory/recycling-readable.js';
import { DEFAULT_CHUNK_SIZE } from '../pipeline/chunk-cipher.js';
import { DEFAULT_COMPRESSION_LEVEL } from '../pipeline/compress.js';
import { createHashTap, sealRoleStream } from '../pipeline/role-stream.js';
import { createProvider } from '../providers/index.js';
import { withoutPassword } from '../providers/pgconn.js';
import type { Provider, RoleDefinition } from '../providers/provider.js';
import type { ProgressReporter } from '../progress.js';
import type { Target, TargetEntry, TreeEntry } from '../targets/target.js';
import { queuedRoleStatus, recordFromInfo, type BackupRecord, type RoleStatusRecord } from './backup-record.js';
import { countBytes } from './byte-counter.js';
import { FilesCache, filesCachePath, type FilesCacheBuilder } from './files-cache.js';
import { storeMembers } from './member-chunks.js';
import { mapConcurrent } from './concurrency.js';
import { storeStillWrappedFor } from './store-rewrapped.js';
import type { OpenRepository } from './repository-access.js';
import { encodeCatalog } from '../repository/catalog.js';
import { ChunkStore, type StoredStream } from '../repository/chunk-store.js';
import { loadOrRebuildIndex } from '../repository/index-rebuild.js';
import { settledPacks } from './settled-packs.js';
import type { RepositoryLayout } from '../repository/layout.js';
import { REPOSITORY_CONFIG_FILE } from '../repository/repository-config.js';

/**
 * One backup: every role flows provider → compress → encrypt → share, concurrently up to a bound,
 * into `<Name>.partial`; BackupInfo.xml is written last and the folder renamed to its final name, so
 * a backup lists only once it is complete. A role that fails leaves the others going (the backup is
 * PartialSucceeded); a share that fails stops everything (the error carries its alert type).
 */

export interface BackupRequest {
  target: Target;
  sharePath: string;
  /** Each gets the data key wrapped for it; any one of them opens the backup. */
  recipients: EncryptFor[];
  roles: RoleDefinition[];
  progress: ProgressReporter;
  signal?: AbortSignal;
  /** Where providers keep plaintext files of this process (ProviderContext.privateDir). */
  privateDir?: string;
  /** Roles exported at once (default 2: one per core). */
  concurrency?: number;
  name?: string;
  createdDateTime?: Date;
  /** Called as the backup advances, so a background job can publish its progress. */
  onUpdate?(record: BackupRecord): void;
  /**
   * The location's deduplicating repository (format 3): roles are cut into chunks stored once per
   * location, and the backup folder holds their catalogs. Without it, a full copy (format 2).
   */
  repository?: OpenRepository;
  /**
   * The folder of files caches (AZSBACKUP_HOME/files-cache): with a repository, directory roles
   * read only the files that changed since the last committed backup of this machine (files-cache.ts).
   */
  filesCache?: string;
}

export interface BackupOutcome {
  record: BackupRecord;
  /** The failures of individual roles, for non-terminating error records. */
  roleErrors: AzsError[];
  /** What the operator must know though it did not fail the backup. */
  warnings: string[];
}

const CHUNK_SIZE = DEFAULT_CHUNK_SIZE;
/**
 * A role whose source changed while it was read (a retryable error) is tried this many times in
 * all, pausing 1 s, then 2 s: long enough for a writer that was mid-update to finish.
 */
const ROLE_ATTEMPTS = 3;
const RETRY_PAUSE_MS = 1000;
const COMPRESSION = `zstd-${DEFAULT_COMPRESSION_LEVEL}`;

function roleFailed(role: string, error: unknown): AzsError {
  if (isAzsError(error)) return error;
  return new AzsError(`Role ${role} failed: ${(error as Error).message}`, {
    errorId: 'RoleBackupFailed',
    category: 'NotSpecified',
    targetObject: role,
    cause: error,
  });
}

export async function runBackup(given: BackupRequest): Promise<BackupOutcome> {
  const run = newRun(given);
  try {
    return await backUp(run);
  } finally {
    // The packers' threads end with the backup, committed or not.
    await (await run.chunks?.store.catch(() => undefined))?.dispose();
  }
}

async function backUp(run: BackupRun): Promise<BackupOutcome> {
  const { req } = run;
  publish(run, 'Starting');
  run.verbose(
    `Backup ${run.name}: ${req.roles.length} role${req.roles.length === 1 ? '' : 's'} (${req.roles.map((r) => r.name).join(', ')}) to ${req.sharePath}, staged in ${run.staging}, encrypted for ${req.recipients.map(recipientLabel).join(', ')}.`,
  );
  await mapConcurrent(req.roles, req.concurrency ?? 2, (role, i) => backUpRole(run, role, i));
  await stopUnlessCommittable(run);

  const failed = run.records.filter((r) => r.status === 'Failed');
  const status: BackupRecord['Status'] =
    failed.length === 0 ? 'Succeeded' : failed.length === run.records.length ? 'Failed' : 'PartialSucceeded';
  const roleErrors = failed.map(
    (r) =>
      new AzsError(`Role ${r.definition.name} failed: ${r.error}`, {
        errorId: 'RoleBackupFailed',
        category: 'NotSpecified',
        targetObject: r.definition.name,
        // The role's own advice where it has some: its source is not always what failed (no room
        // for its copy, a limit on processes that kept its program from starting).
        recommendedAction:
          run.remedies[run.records.indexOf(r)] ?? "Fix the role's source named in the message, then run Start-InfrastructureBackup again.",
      }),
  );
  if (status === 'Failed') {
    await discard(run);
    const record = snapshot(run, 'Failed', 'Every role failed; nothing was written to the share.');
    record.TimeTakenToCreate = Date.now() - run.created.getTime();
    return { record, roleErrors, warnings: [] };
  }
  const info = await commit(run, status);
  saveFilesCaches(run);
  const warnings = req.recipients.flatMap((r) =>
    r.kind === 'Certificate' && !r.authenticationKey ? [unauthenticatedCertificateWarning(r.thumbprint)] : [],
  );
  if (run.chunks?.missingPacks.length) warnings.push(missingPacksWarning(run.chunks.missingPacks));
  return { record: recordFromInfo(info, req.sharePath), roleErrors, warnings };
}

/** One backup under way: where it is staged, its data key, and what became of each role so far. */
interface BackupRun {
  req: BackupRequest;
  name: string;
  created: Date;
  stamp: string;
  /** The folder the role files are written into: `<Name>.partial`, or the final folder where a rename copies. */
  staging: string;
  /** Settles once the staging folder exists; awaited by every role and after them. */
  stagingReady: Promise<void>;
  dataKey: Buffer;
  recipients: BackupInfo['recipients'];
  activity: string;
  statuses: RoleStatusRecord[];
  records: RoleRecord[];
  /** What each failed role's own error advises, for the error the command reports of it. */
  remedies: (string | undefined)[];
  /** What each role's export asked to keep beside its data (ProviderContext.keep). */
  kept: (Record<string, string> | undefined)[];
  /** The first failure of the share itself: it stops every role. */
  shareFailure?: AzsError;
  /** Roles finished, for the percentage. */
  done: number;
  /** With a repository: the store every role adds its chunks to (so roles dedup against each other too). */
  chunks?: RunChunks;
  verbose(message: string): void;
}

/** A backup's side of the repository: its chunk store, once the index is loaded, and each role's stream as stored. */
interface RunChunks {
  repository: OpenRepository;
  store: Promise<ChunkStore>;
  streams: (StoredStream | undefined)[];
  /** Packs the index names that are not on the share: their chunks were stored anew. */
  missingPacks: string[];
  /** Per role stored member by member: the files cache to save once the backup is committed. */
  caches: ({ file: string; next: FilesCacheBuilder } | undefined)[];
  /** config.xml as the commit's listing of the repository saw it (null: not there): its size, for the read after. */
  configListed?: TargetEntry | null;
}

function newRun(given: BackupRequest): BackupRun {
  const req = { ...given, target: tracedTarget(given.target, given.progress) };
  const name = req.name ?? randomUUID();
  const created = req.createdDateTime ?? new Date();
  const stamp = stampOf(created);
  // Where a rename is a copy (a blob container), the backup is written in place and committed by
  // its BackupInfo.xml, written last: a folder without one never lists (docs/FORMAT.md).
  const staging = req.target.renameCopies ? backupFolder(stamp, name) : partialFolder(stamp, name);
  const dataKey = newDataKey();
  const recipients = req.recipients.map((r) => wrapFor(r, dataKey, name));
  const statuses: RoleStatusRecord[] = req.roles.map(queuedRoleStatus);
  // The share makes the staging folder while the first roles start: their first bytes wait in the
  // pipe meanwhile, and on SMB the round trip (0.1-0.2 s) no longer comes before tar starts.
  const stagingReady = req.target.mkdir(staging);
  stagingReady.catch(() => {}); // Awaited by every role and after them; never unhandled meanwhile.
  return {
    req,
    name,
    created,
    stamp,
    staging,
    stagingReady,
    dataKey,
    recipients,
    statuses,
    activity: `Backup ${name}`,
    records: new Array(req.roles.length),
    remedies: new Array(req.roles.length),
    kept: new Array(req.roles.length),
    done: 0,
    ...(req.repository ? { chunks: runChunks(req.target, req.repository, req.roles.length) } : {}),
    verbose: (message) => req.progress.log?.('Verbose', message),
  };
}

function runChunks(target: Target, repository: OpenRepository, roles: number): RunChunks {
  // The index loads while the first roles start; their first chunks wait for it. A lost index
  // (no index file, packs present) is rebuilt from the packs first, so this backup still dedups,
  // but never from another machine's packs that its unfinished backup may yet delete
  // (settled-packs.ts); chunks in packs missing from the share are stored anew.
  const missingPacks: string[] = [];
  const store = ChunkStore.opening(
    target,
    repository.layout,
    repository.keys,
    loadOrRebuildIndex(
      target,
      repository.layout,
      repository.keys,
      (packs) => missingPacks.push(...packs),
      (packs) => settledPacks(target, packs),
    ),
  );
  store.catch(() => {}); // Awaited by every role; never unhandled meanwhile.
  return { repository, store, streams: new Array(roles), missingPacks, caches: new Array(roles) };
}

/** The backup as Get-InfrastructureBackup shows it, while it runs. */
function snapshot(run: BackupRun, status: BackupRecord['Status'], progress: string | null): BackupRecord {
  const { req, statuses, created } = run;
  return {
    Name: run.name,
    Status: status,
    RoleStatus: statuses.map((s) => ({ ...s })),
    CreatedDateTime: created.toISOString(),
    TimeTakenToCreate: Date.now() - created.getTime(),
    BackupDataVersion: BACKUP_DATA_VERSION,
    EncryptionCertThumbprint: run.recipients.find((r) => r.kind === 'Certificate')?.id ?? null,
    EncryptionKeyId: run.recipients.find((r) => r.kind === 'Key')?.id ?? null,
    Size: statuses.reduce((n, s) => n + s.StoredSize, 0),
    IsCloudRecoveryReady: false,
    SharePath: req.sharePath,
    Progress: progress,
  };
}

function publish(run: BackupRun, message: string): void {
  const { req, done } = run;
  const percent = req.roles.length ? Math.floor((done / req.roles.length) * 100) : 100;
  req.progress.report({ activity: run.activity, status: message, percentComplete: percent, id: 0 });
  req.onUpdate?.(snapshot(run, 'Running', `${done} of ${req.roles.length} roles done. ${message}`));
}

/** Role i, tried again while it fails with a retryable error; its outcome goes into the run. */
async function backUpRole(run: BackupRun, role: RoleDefinition, i: number): Promise<void> {
  const { req } = run;
  // A cancelled backup starts no more roles; it is not committed (stopUnlessCommittable).
  if (req.signal?.aborted) return;
  const status = run.statuses[i]!;
  const started = Date.now();
  status.Status = 'Running';
  const file = roleFileName(role.name);
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        if (run.shareFailure) throw run.shareFailure;
        run.records[i] = await attemptRole(run, role, i, file, started);
        status.Status = 'Succeeded';
        return;
      } catch (e) {
        const error = roleFailed(role.name, e);
        if (error.retryable && attempt < ROLE_ATTEMPTS && !run.shareFailure && !req.signal?.aborted) {
          await req.target.delete(`${run.staging}/${file}`).catch(() => {});
          req.progress.report({
            activity: `Role ${role.name}`,
            status: `Trying again (attempt ${attempt + 1} of ${ROLE_ATTEMPTS}): ${error.message}`,
            id: i + 1,
            parentId: 0,
          });
          await sleep(RETRY_PAUSE_MS * attempt);
          continue;
        }
        // Once the backup was told to stop, a share failure is the stop's doing more than the
        // share's (systemd's stop signals smbclient too): it is cancelled, not raised as the share.
        if (error.alertType && !req.signal?.aborted) run.shareFailure ??= error;
        status.Status = 'Failed';
        status.Error = error.message;
        run.remedies[i] = error.recommendedAction;
        run.verbose(`Role ${role.name} (${role.provider}) failed after ${seconds(Date.now() - started)}: ${error.message}`);
        run.records[i] = {
          definition: recordable(role),
          status: 'Failed',
          size: status.Size,
          durationMs: Date.now() - started,
          error: error.message,
          files: [],
        };
        if (!error.alertType) await req.target.delete(`${run.staging}/${file}`).catch(() => {});
        return;
      }
    }
  } finally {
    status.Duration = Date.now() - started;
    run.done++;
    req.progress.report({ activity: `Role ${role.name}`, status: status.Status, id: i + 1, parentId: 0, completed: true });
    publish(run, `${role.name}: ${status.Status}`);
  }
}

/** One attempt at a role, in the repository or as a full copy; its record once stored. */
async function attemptRole(run: BackupRun, role: RoleDefinition, i: number, file: string, started: number): Promise<RoleRecord> {
  const status = run.statuses[i]!;
  const took = () => seconds(Date.now() - started);
  let stored: Pick<RoleRecord, 'files' | 'addedBytes'>;
  if (run.chunks) {
    const stream = await storeRoleChunks(run, run.chunks, role, i);
    status.StoredSize = stream.storedBytes;
    run.verbose(
      `Role ${role.name} (${role.provider}): ${status.Size} bytes exported, ${stream.storedBytes} bytes stored as ` +
        `${stream.newChunks} new chunks of ${stream.chunks.length} (${stream.newBytes} bytes new) in ${took()}.`,
    );
    // Its catalog is written at commit, once the packs holding its chunks have their names.
    stored = { files: [], addedBytes: stream.storedBytes };
  } else {
    const digest = await storeRole(run, role, i, file);
    status.StoredSize = digest.bytes;
    run.verbose(
      `Role ${role.name} (${role.provider}): ${status.Size} bytes exported, ${digest.bytes} bytes stored as ${file} in ${took()}.`,
    );
    stored = { files: [{ name: file, size: digest.bytes, sha256: digest.sha256 }] };
  }
  return {
    definition: recordable(role),
    status: 'Succeeded',
    size: status.Size,
    durationMs: Date.now() - started,
    ...stored,
    ...(run.kept[i] ? { kept: run.kept[i] } : {}),
  };
}

/** The role's export as it flows, counted into its status. */
async function exportRole(
  run: BackupRun,
  role: RoleDefinition,
  i: number,
  provider?: Provider,
): Promise<{ source: Readable; counter: Transform }> {
  const source = await (provider ?? (await createProvider(role))).export(exportContext(run, i));
  return { source, counter: countBytes(exportedBytes(run, role, i)) };
}

function exportContext(run: BackupRun, i: number) {
  const { req } = run;
  return {
    signal: req.signal,
    privateDir: req.privateDir,
    keep: (attributes: Record<string, string>) => {
      run.kept[i] = attributes;
    },
  };
}

/**
 * Keeps the bytes role i exported so far in its status, and reports them as progress at most every
 * PROGRESS_MS: a folder's export calls it once per file, and an unchanged file costs little else.
 */
function exportedBytes(run: BackupRun, role: RoleDefinition, i: number): (n: number) => void {
  const status = run.statuses[i]!;
  const activity = `Role ${role.name}`;
  let reported = 0;
  return (n) => {
    status.Size = n;
    const now = Date.now();
    if (now - reported < PROGRESS_MS) return;
    reported = now;
    run.req.progress.report({ activity, status: `${(n / 1048576).toFixed(1)} MB exported`, id: i + 1, parentId: 0 });
  };
}
const PROGRESS_MS = 100;

/**
 * One attempt at a role into the repository: its chunks stored (once per location); its catalog
 * is written at commit, once the packs that hold its chunks have their names.
 */
async function storeRoleChunks(run: BackupRun, chunks: RunChunks, role: RoleDefinition, i: number): Promise<StoredStream> {
  const provider = await createProvider(role);
  if (provider.exportMembers) return storeRoleMembers(run, chunks, role, i, provider);
  const { source, counter } = await exportRole(run, role, i, provider);
  // Piped at once, so an export that fails while the index still loads is this role's error, not
  // an unhandled one (the pipe holds the first bytes meanwhile).
  const exported = pipeline(source, counter, () => {});
  let store: ChunkStore;
  try {
    store = await chunks.store;
  } catch (e) {
    exported.destroy();
    throw e;
  }
  const stored = await store.storeStream(exported);
  chunks.streams[i] = stored;
  return stored;
}

/**
 * One attempt at a role whose provider exports member by member (a directory): files that the
 * files cache knows unchanged are not read (member-chunks.ts). The cache it makes is saved once
 * the backup is committed (saveFilesCaches), never before: a killed backup leaves the previous one.
 */
async function storeRoleMembers(
  run: BackupRun,
  chunks: RunChunks,
  role: RoleDefinition,
  i: number,
  provider: Provider,
): Promise<StoredStream> {
  const archive = await provider.exportMembers!(exportContext(run, i));
  const store = await chunks.store;
  const file = run.req.filesCache ? filesCachePath(run.req.filesCache, chunks.repository.id, role.name) : undefined;
  const previous = file ? FilesCache.load(file) : {};
  if (previous.note) run.verbose(`Role ${role.name}: ${previous.note}.`);
  const stored = await storeMembers(store, archive, previous.cache, exportedBytes(run, role, i));
  run.verbose(
    `Role ${role.name}: ${stored.reused} files unchanged since the last backup (files cache, not read), ${stored.read} files read.`,
  );
  chunks.streams[i] = stored.stream;
  chunks.caches[i] = file ? { file, next: stored.next } : undefined;
  return stored.stream;
}

/** The files caches of the roles this committed backup stored member by member; a failure to save one is only said. */
function saveFilesCaches(run: BackupRun): void {
  for (const [i, cache] of run.chunks?.caches.entries() ?? []) {
    if (!cache || run.records[i]?.status !== 'Succeeded') continue;
    try {
      cache.next.save(cache.file);
    } catch (e) {
      run.verbose(
        `The files cache ${cache.file} could not be saved (${(e as Error).message}); the next backup reads every file of this role.`,
      );
    }
  }
}

/** One attempt at a role as a full copy: its data exported, sealed and stored in the staging folder. */
async function storeRole(run: BackupRun, role: RoleDefinition, i: number, file: string): Promise<{ bytes: number; sha256: string }> {
  const { source, counter } = await exportRole(run, role, i);
  return writeSealed(run, role.name, file, source, counter);
}

/**
 * A role file written sealed (compressed, encrypted under the data key, bound to backup, role and
 * file) into the staging folder: a role's data, or a role's catalog. Its size and SHA-256.
 */
async function writeSealed(
  run: BackupRun,
  roleName: string,
  file: string,
  source: Readable,
  ...through: Transform[]
): Promise<{ bytes: number; sha256: string }> {
  const { req } = run;
  const seal = sealRoleStream({ dataKey: run.dataKey, backupName: run.name, roleName, fileName: file, chunkSize: CHUNK_SIZE });
  const tap = createHashTap();
  // Memory goes round instead of being allocated afresh (docs/PERFORMANCE.md): the program's
  // output buffers once zstd has copied them, the sealed records once the share has them.
  const giveBack = recyclerOf(source);
  if (giveBack) seal.handInputBackTo(giveBack);
  const stored = pipeline([source, ...through, seal, tap], () => {}) as unknown as Readable;
  recycleThrough(stored, seal);
  try {
    await run.stagingReady;
  } catch (e) {
    stored.destroy();
    throw e;
  }
  // In place: the folder's rename commits the backup, so a per-file rename would only add a round trip.
  await req.target.write(`${run.staging}/${file}`, stored, { atomic: false });
  return tap.digest();
}

/** Throws, leaving nothing committed, when the staging folder or the share failed or the backup was cancelled. */
async function stopUnlessCommittable(run: BackupRun): Promise<void> {
  const { req } = run;
  // A staging folder that could not be made fails the backup as it always did, whatever the roles saw.
  await run.stagingReady;
  if (run.shareFailure) {
    // The share itself failed: nothing can be committed. Leave the partial folder for prune; a
    // failed share may not even let us delete it.
    await abandonChunks(run);
    await req.target.delete(run.staging).catch(() => {});
    throw run.shareFailure;
  }
  if (req.signal?.aborted) {
    // Cancelled: whatever the roles that finished stored, this is not the backup that was asked for.
    await discard(run);
    throw cancelled(req.signal);
  }
}

/** The staging folder removed, and its stamp's folder if that leaves it empty; an open pack given up. */
async function discard(run: BackupRun): Promise<void> {
  await abandonChunks(run);
  await run.req.target.delete(run.staging).catch(() => {});
  await removeIfEmpty(run.req.target, `${ROOT}/${run.stamp}`).catch(() => {});
}

/**
 * The repository's part of a commit, in the order that makes a kill at any point harmless: the
 * last pack closed and every new pack indexed, then each role's catalog, then (the caller)
 * BackupInfo.xml naming every pack the catalogs need. A pack a catalog names is checked to be
 * there still: a prune elsewhere may have judged it garbage while this backup ran.
 */
async function commitChunks(run: BackupRun, chunks: RunChunks): Promise<RepositoryReference> {
  const { req } = run;
  const store = await chunks.store;
  await store
    .commit(() => haltForTest('packs'))
    .catch(async (e: unknown) => {
      // Its packs closed (a packing thread that died fails their closing once the main thread packed
      // every job) are named by no index file yet: given up as a failed backup's are. Those indexed
      // already are not the abort's to delete.
      await store.abort().catch(() => {});
      throw e;
    });
  await haltForTest('index');
  const packs = new Set<string>();
  for (const [i, stream] of chunks.streams.entries()) {
    const record = run.records[i];
    if (!stream || record?.status !== 'Succeeded') continue;
    const locations = store.index.locationsOf(stream.chunks);
    for (let c = 0; c < locations.length; c++) packs.add(locations.packOf(c));
    const file = catalogFileName(record.definition.name);
    const catalog = encodeCatalog({ streamLength: stream.bytes, chunks: locations });
    const digest = await writeSealed(run, record.definition.name, file, Readable.from([catalog]));
    record.files = [{ name: file, size: digest.bytes, sha256: digest.sha256 }];
  }
  // One listing of the repository: its packs, and config.xml's entry for the check once the backup lists.
  const { layout } = chunks.repository;
  const tree = await req.target.listTree(layout.root);
  const present = new Set(tree.flatMap((e) => packHashIn(layout, e) ?? []));
  const missing = [...packs].filter((p) => !present.has(p));
  if (missing.length) throw packsGone(missing);
  chunks.configListed = tree.find((e) => e.path === REPOSITORY_CONFIG_FILE) ?? null;
  await haltForTest('catalogs');
  const { repository } = chunks;
  return { id: repository.id, keyFingerprint: repository.fingerprint, packs: [...packs].sort() };
}

/** The hash of a committed pack an entry of the repository's tree is, if it is one. */
function packHashIn(layout: RepositoryLayout, e: TreeEntry): string | undefined {
  const below = `${layout.packsFolder.slice(layout.root.length + 1)}/`;
  return !e.isDirectory && e.path.startsWith(below) ? layout.packHashOf(e.path.slice(below.length)) : undefined;
}

function missingPacksWarning(missing: string[]): string {
  const some = `${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}`;
  return (
    `${missing.length} pack${missing.length === 1 ? '' : 's'} the repository's index names ${missing.length === 1 ? 'is' : 'are'} not on the share (${some}): ` +
    'this backup stored what it needed of them anew, but earlier backups that need them cannot be restored. ' +
    'Run Test-BackupRepository to see which backups are damaged; remove those with Remove-InfrastructureBackup once newer ones exist.'
  );
}

function packsGone(missing: string[]): AzsError {
  return new AzsError(
    `${missing.length} pack${missing.length === 1 ? '' : 's'} this backup needs left the share while it ran (${missing.slice(0, 3).join(', ')}…); nothing was committed.`,
    {
      errorId: 'RepositoryPackMissing',
      category: 'ResourceUnavailable',
      targetObject: missing,
      recommendedAction:
        'Another machine may have pruned the share meanwhile: run Start-InfrastructureBackup again (it stores those chunks anew), and prune from one machine only.',
    },
  );
}

/**
 * TEST ONLY: AZSBACKUP_TEST_HALT_AT=<step> stops a backup for good at that step of its commit, and
 * says so on stderr (`AZSBACKUP_TEST_HALTED <step>`), so that a test can kill -9 it exactly there
 * (test/engine/repository-crash.test.ts). Steps, in order: `packs` (every pack under its final
 * name, no index file naming them), `index` (indexed, no catalog), `catalogs` (catalogs in the
 * staging folder, no BackupInfo.xml), `info` (BackupInfo.xml written, the folder not renamed).
 * Never set it in production: the backup never ends.
 */
async function haltForTest(step: 'packs' | 'index' | 'catalogs' | 'info'): Promise<void> {
  if (process.env.AZSBACKUP_TEST_HALT_AT !== step) return;
  process.stderr.write(`AZSBACKUP_TEST_HALTED ${step}\n`);
  await new Promise(() => setInterval(() => {}, 60_000));
}

/** BackupInfo.xml written last, and the folder renamed to its final name: the backup now lists. */
async function commit(run: BackupRun, status: BackupRecord['Status']): Promise<BackupInfo> {
  const { req, name, stamp, staging, records } = run;
  const repository = run.chunks ? await commitChunks(run, run.chunks) : undefined;
  const info: BackupInfo = {
    name,
    status,
    createdDateTime: run.created,
    completedDateTime: new Date(),
    backupDataVersion: BACKUP_DATA_VERSION,
    compression: COMPRESSION,
    chunkSize: CHUNK_SIZE,
    recipients: run.recipients,
    roles: records,
    ...(repository ? { repository } : {}),
  };
  await req.target.write(
    `${staging}/${INFO_FILE}`,
    readableOf(serializeBackupInfo(info, sealKeysFor(run.dataKey, name, stamp, req.recipients))),
    { atomic: false },
  );
  await haltForTest('info');
  if (staging !== backupFolder(stamp, name)) await req.target.rename(staging, backupFolder(stamp, name));
  if (run.chunks) await stillWrappedOnceListed(run, run.chunks);
  run.verbose(
    `Backup ${name} ${status}: committed as ${backupFolder(stamp, name)}, ${records.reduce((n, r) => n + (r.files[0]?.size ?? 0) + (r.addedBytes ?? 0), 0)} bytes stored in ${seconds(Date.now() - run.created.getTime())}.`,
  );
  req.progress.report({ activity: run.activity, status: status, percentComplete: 100, id: 0, completed: true });
  return info;
}

/**
 * The store's wraps checked once the backup lists (storeStillWrappedFor): a re-wrap on another
 * machine that dropped the wraps this backup needs before then left a backup that opens with no
 * material, so it is removed again and the backup fails.
 */
async function stillWrappedOnceListed(run: BackupRun, chunks: RunChunks): Promise<void> {
  const { req, name, stamp } = run;
  try {
    await storeStillWrappedFor(req.target, chunks.repository, req.recipients, chunks.configListed);
  } catch (e) {
    if (!isAzsError(e) || e.errorId !== 'RepositoryRewrapped') throw e;
    await removeBackup(req.target, { name, stamp, folder: backupFolder(stamp, name), time: run.created }).catch(() => {});
    throw e;
  }
}

/** The packs this backup wrote and never indexed deleted where the share lets us (the open one's pending file too); prune takes the rest. */
async function abandonChunks(run: BackupRun): Promise<void> {
  if (!run.chunks) return;
  const store = await run.chunks.store.catch(() => undefined);
  await store?.abort().catch(() => {});
}

function cancelled(signal: AbortSignal): AzsError {
  if (isAzsError(signal.reason)) return signal.reason;
  return new AzsError('The backup was cancelled before it was complete; nothing was committed to the share.', {
    errorId: 'BackupCancelled',
    category: 'OperationStopped',
    exitCode: ExitCode.Interrupted,
  });
}

/** The role as BackupInfo.xml records it: never with a database password. */
function recordable(role: RoleDefinition): RoleDefinition {
  return role.connectionString ? { ...role, connectionString: withoutPassword(role.connectionString) } : role;
}

function readableOf(text: string): Readable {
  return Readable.from([Buffer.from(text, 'utf8')]);
}
