import { realpathSync } from 'node:fs';
import path from 'node:path';
import { pipeline, Writable, type Readable } from 'node:stream';
import { AzsError, ExitCode, isAzsError } from '../errors.js';
import { listShare } from '../catalog/share-catalog.js';
import type { RoleRecord } from '../catalog/backup-info.js';
import type { DecryptWith } from '../crypto/recipient.js';
import { openRoleStream } from '../pipeline/role-stream.js';
import { createProvider } from '../providers/index.js';
import type { Provider, RoleDefinition } from '../providers/provider.js';
import type { ProgressReporter } from '../progress.js';
import { recycleThrough, recyclerOf } from '../memory/recycling-readable.js';
import type { Target } from '../targets/target.js';
import { withoutPassword } from '../providers/pgconn.js';
import { seconds, tracedTarget } from './traced-target.js';
import { spooledTarget, type SpooledTarget } from './spooled-target.js';
import { openBackup, type Authenticity } from './open-backup.js';
import { createVerifyTap } from './verify-tap.js';
import { countBytes } from './byte-counter.js';
import { repositoryForReading, type OpenRepository } from './repository-access.js';
import { readCatalogFrom } from '../repository/catalog.js';
import { readCatalog, startChunkOpeners } from '../repository/chunk-reader.js';
import { describeRoom, destinationFull, roomFor, shortOf, type RoomOnFileSystem } from './restore-room.js';

/**
 * Restores the roles of one backup in their declared order, from the role catalog the backup
 * recorded, so a freshly redeployed machine needs nothing but the share and the decryption material.
 * Every chunk is authenticated before its bytes reach a provider, and providers swap a role into
 * place only on a clean end; providers that cannot stage get a verified file (a first full pass,
 * whose local copies the import then reads: spooled-target.ts).
 * With several roles, all are staged or verified before any destination changes (runRestore), and
 * the first failing role stops the restore: later roles may depend on it.
 */

export interface RestoreRequest {
  target: Target;
  name: string;
  material: DecryptWith;
  roleName?: string;
  progress: ProgressReporter;
  signal?: AbortSignal;
  /**
   * The role of this name as this machine registered it (with its secrets), if it did. Where it
   * does, its definition decides where the data goes and what runs, not the backup's, and a
   * difference is reported.
   */
  registeredRole?: (name: string) => RoleDefinition | undefined;
  /** Restores a certificate-mode backup that carries no proof of who made it (OpenOptions). */
  allowUnauthenticated?: boolean;
  /** Stages the roles without comparing what they recorded with the free space (restore-room.ts). */
  skipSpaceCheck?: boolean;
  /** This process's private folder (src/process/private-dir.ts), for the local copies of what is read twice; TMPDIR without it. */
  privateDir?: string;
}

export interface RestoreResultRecord {
  BackupName: string;
  RoleName: string;
  Provider: string;
  Status: 'Succeeded' | 'Failed' | 'Skipped';
  Destination: string | null;
  Size: number;
  Duration: number;
  Error: string | null;
  /** How the backup was proven to be ours: Key, Certificate, or Unauthenticated (-AllowUnauthenticated). */
  Authenticity: Authenticity;
  /** Whose role definition was followed: this machine's registration, or the backup's record (a fresh machine). */
  DefinitionSource: 'Registered' | 'Backup';
  /** Where this machine's registration differs from what the backup recorded, in words; null when they agree. */
  DefinitionDifference: string | null;
}

export interface RestoreOutcome {
  results: RestoreResultRecord[];
  /** What the operator must know though nothing failed: an unauthenticated backup, definitions that differ. */
  warnings: string[];
  /**
   * Roles the backup lists but does not hold (they failed when it was made: a PartialSucceeded
   * backup), so a restore of every role did not put them back: one non-terminating error each.
   */
  roleErrors: AzsError[];
  error?: AzsError;
}

/** The fields of a role definition that decide where data goes and what runs. */
const DECISIVE: (keyof RoleDefinition)[] = [
  'provider',
  'path',
  'exportCommand',
  'importCommand',
  'connectionString',
  'timeoutSeconds',
  'restoreOrder',
];

/** Where a registered role differs from a recorded one, e.g. "path: /etc/pki/ca (backup: /tmp/x)"; passwords never compared. */
function definitionDifference(registered: RoleDefinition, recorded: RoleDefinition): string | null {
  const shown = (d: RoleDefinition, k: keyof RoleDefinition): string => {
    const v = k === 'connectionString' && d.connectionString ? withoutPassword(d.connectionString) : d[k];
    return v === undefined ? '(none)' : Array.isArray(v) ? JSON.stringify(v) : String(v);
  };
  const differing = DECISIVE.filter((k) => shown(registered, k) !== shown(recorded, k));
  return differing.length ? differing.map((k) => `${k}: ${shown(registered, k)} (backup: ${shown(recorded, k)})`).join('; ') : null;
}

/**
 * The definition a role is restored with: this machine's registration wins over the backup's record,
 * but never over its provider: the data is in the form the recorded provider made (a folder's tar,
 * a database file, a program's output), and only that provider can put it back.
 */
function effectiveRole(record: RoleRecord, registered: RoleDefinition | undefined, backupName: string): EffectiveRole {
  if (!registered) return { record, definition: record.definition, source: 'Backup', difference: null };
  const recorded = record.definition;
  if (registered.provider !== recorded.provider) {
    throw new AzsError(
      `Role ${recorded.name} is registered on this machine with the ${registered.provider} provider, but backup ${backupName} holds it as ` +
        `the ${recorded.provider} provider made it, which only that provider can put back. Nothing was restored.`,
      {
        errorId: 'RoleProviderChanged',
        category: 'InvalidOperation',
        exitCode: ExitCode.Failure,
        targetObject: recorded.name,
        recommendedAction:
          `Run Unregister-InfrastructureRole -Name ${recorded.name} to restore it as the backup recorded it, or register it again with ` +
          `-Force as a ${recorded.provider} role where it should go; then restore again.`,
      },
    );
  }
  return {
    record,
    definition: { ...registered, name: record.definition.name },
    source: 'Registered',
    difference: definitionDifference(registered, record.definition),
  };
}

interface EffectiveRole {
  record: RoleRecord;
  definition: RoleDefinition;
  source: RestoreResultRecord['DefinitionSource'];
  difference: string | null;
}

/**
 * The decrypted plaintext of one stored role file. Every chunk authenticates under a key bound to
 * this backup, role and file, with its index and a last-chunk flag in the nonce, so a changed,
 * truncated, extended, reordered or transplanted file fails here without the SHA-256 of the whole
 * file (which the keyless checks use, and which cost a restore a tenth of its time). Its reader may
 * hand chunks back when done with them (src/memory/recycling-readable.ts).
 */
function plaintextOf(source: Readable, role: RoleRecord, backupName: string, dataKey: Buffer): Readable {
  const file = role.files[0]!;
  const opening = openRoleStream({ dataKey, backupName, roleName: role.definition.name, fileName: file.name });
  const giveBack = recyclerOf(source);
  if (giveBack) opening.handInputBackTo(giveBack);
  return pipeline(source, opening, () => {});
}

/** Reads `stream` to its end, handing each chunk back where it takes them; the number of bytes. */
async function drain(stream: Readable): Promise<number> {
  const recycle = recyclerOf(stream);
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    const count = new Writable({
      write(chunk: Buffer, _e, done) {
        bytes += chunk.length;
        recycle?.(chunk);
        done();
      },
    });
    pipeline(stream, count, (e) => (e ? reject(e) : resolve()));
  });
  return bytes;
}

/** The providers resolve a destination's symbolic links before they swap, so nesting is judged the same way. */
function realOrResolved(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

/** True when one selected role restores into, or around, another's destination. */
function destinationsNest(roles: RoleRecord[]): boolean {
  const places = roles
    .map((r) => r.definition.path)
    .filter((p): p is string => p !== undefined)
    .map(realOrResolved);
  return places.some((a, i) => places.some((b, j) => i !== j && (a === b || a.startsWith(`${b}${path.sep}`))));
}

/** A staged import held at its provider's beforeCommit() until the engine lets it go on or stops it. */
interface HeldImport {
  /** Settles once the data is staged and verified (true), or the import failed before that. */
  staged: Promise<true>;
  /** Lets the import change the destination; resolves when it has. */
  commit(): Promise<void>;
  /** Makes the import give up and discard what it staged. */
  abandon(reason: AzsError): Promise<void>;
}

function holdImport(run: (beforeCommit: () => Promise<void>) => Promise<void>): HeldImport {
  let reached!: () => void;
  const staged = new Promise<true>((resolve) => {
    reached = () => resolve(true);
  });
  let release!: (go: AzsError | undefined) => void;
  const decision = new Promise<AzsError | undefined>((resolve) => {
    release = resolve;
  });
  const done = run(async () => {
    reached();
    const stop = await decision;
    if (stop) throw stop;
  });
  return {
    staged: Promise.race([staged, done.then(() => true as const)]),
    async commit() {
      release(undefined);
      await done;
    },
    async abandon(reason) {
      release(reason);
      await done.catch(() => undefined);
    },
  };
}

export async function runRestore(given: RestoreRequest): Promise<RestoreOutcome> {
  const req = { ...given, target: tracedTarget(given.target, given.progress) };
  // Nothing the backup records (providers, paths, commands, owners, modes) is used before this proves it ours.
  const { info, entry, dataKey, authenticity } = await openBackup(req.target, req.name, req.material, {
    allowUnauthenticated: req.allowUnauthenticated,
  });
  const effective = rolesToRestore(info.roles, entry.name, req);
  const missing = req.roleName === undefined ? info.roles.filter((r) => !restorable(r)) : [];
  // The threads that open chunks boot while the repository and its index are read.
  if (info.repository) startChunkOpeners();
  const repository = info.repository && (await repositoryForReading(req.target, info.repository, req.material));
  const run = newRun(req, entry, dataKey!, authenticity!, effective, repository);
  try {
    const outcome = await restoreRoles(run);
    return { ...outcome, ...notBackedUp(missing, entry.name, authenticity!, outcome.results) };
  } finally {
    await run.copies.discard();
  }
}

/**
 * -WhatIf: the room each file system the selected roles would be staged on needs and has, from the
 * backup opened and its roles chosen as a restore would; nothing is staged.
 */
export async function roomForRestore(given: RestoreRequest): Promise<RoomOnFileSystem[]> {
  const req = { ...given, target: tracedTarget(given.target, given.progress) };
  const { info, entry } = await openBackup(req.target, req.name, req.material, { allowUnauthenticated: req.allowUnauthenticated });
  return roomFor(rolesToRestore(info.roles, entry.name, req).map((e) => ({ ...e.record, definition: e.definition })));
}

async function restoreRoles(run: RestoreRun): Promise<RestoreOutcome> {
  const { req, entry, selected } = run;

  // Before anything is staged or read from the share: a role larger than the room left would fill
  // its file system to the last byte (and the other services on it with it) before it failed.
  const short = req.skipSpaceCheck ? [] : shortOf(await roomFor(selected));
  if (short.length > 0) return refusedForRoom(run, short);
  // A damaged later role must not leave earlier ones restored from a backup that cannot be restored
  // whole. So every role is first staged (or, where its provider cannot stage, verified), and only
  // then do the destinations change, in order: a role file is read from the share once where it
  // can be staged, rather than once to check it and again to restore it. Roles whose destinations
  // lie inside one another cannot be staged side by side (the outer one's swap would carry the
  // inner one's staging away), so those restore one after the other behind a check of every role
  // first (checkEveryFile). A role read twice is read the second time from local copies of what the
  // first read took from the share (spooled-target.ts): the restore imports what the check saw.
  const sideBySide = !destinationsNest(selected);
  if (selected.length > 1 && !sideBySide) {
    run.readTwice.fill(true);
    await checkEveryFile(run);
  }
  // Several roles: all staged first, then all swapped. One role, or nested ones: each in turn.
  const stageAll = sideBySide && selected.length > 1;
  run.verbose(
    `Restore of backup ${entry.name}: ${selected.length} role${selected.length === 1 ? '' : 's'} (${selected.map((r) => r.definition.name).join(', ')}) from ${entry.folder}${stageAll ? ', all staged before the first goes into place' : ''}.`,
  );
  const failed = await restoreInOrder(run, stageAll);
  const failure = failed && (await removedMeanwhile(run, failed));
  // Whatever is still held after a failure is given up: its staging goes, its destination stays.
  for (const [i, h] of run.held.entries()) if (h && run.results[i]!.Status === 'Skipped') await h.abandon(failure!);
  const warnings = [...restoreWarnings(entry.name, run.authenticity, run.effective), ...run.notices];
  if (failure) {
    run.verbose(`Restore of backup ${entry.name} failed: ${failure.message}`);
    const notRestored = stoppedAfter(run);
    if (notRestored) warnings.push(notRestored);
  }
  req.progress.report({ activity: run.activity, status: failure ? 'Failed' : 'Done', percentComplete: 100, id: 0, completed: true });
  return { results: run.results, warnings, roleErrors: [], error: failure };
}

/**
 * A role that failed on data the share no longer holds, of a backup the share no longer lists: a
 * prune on another machine (this machine's job lock holds off its own) removed the backup, past
 * its retention there, while it was read. Said so, rather than as the damage or tampering a missing
 * pack or file otherwise is.
 */
async function removedMeanwhile(run: RestoreRun, failure: AzsError): Promise<AzsError> {
  if (failure.errorId !== 'PackDamaged' && failure.errorId !== 'TargetObjectNotFound') return failure;
  const { target } = run.req;
  const name = run.entry.name.toLowerCase();
  const listed = await listShare(target).then(
    (l) => l.backups.some((b) => b.name === name),
    () => true, // the share cannot tell: the failure stands as it was
  );
  if (listed) return failure;
  const role = run.results.find((r) => r.Status === 'Failed');
  const error = new AzsError(
    `Backup ${run.entry.name} was removed from ${target.location} while it was being restored (by a prune on another machine, ` +
      `the backup being past the retention period there)${role ? `; role ${role.RoleName} was not restored` : ''}.`,
    {
      errorId: 'BackupNotFound',
      category: 'ObjectNotFound',
      targetObject: run.entry.name,
      recommendedAction:
        'Restore another backup (Get-InfrastructureBackup lists those left); roles restored before it stay restored. While restoring an ' +
        'old backup, keep the other machines from pruning the share (a longer -BackupRetentionPeriodInDays there).',
      cause: failure,
    },
  );
  if (role) role.Error = error.message;
  return error;
}

/**
 * The restore refused before anything was written, as file systems lack room: the roles staged on
 * them failed, each saying which and how short it is; the others were not restored because of them.
 */
function refusedForRoom(run: RestoreRun, short: RoomOnFileSystem[]): RestoreOutcome {
  const error = destinationFull(run.entry.name, short);
  const failed = short.flatMap((room) => room.roles.map((r) => r.name));
  const skipped: string[] = [];
  for (const result of run.results) {
    const own = short.find((room) => room.roles.some((r) => r.name === result.RoleName));
    if (own) {
      result.Status = 'Failed';
      result.Error = `Not restored: ${describeRoom(own)}; its destination was left as it was.`;
    } else {
      skipped.push(result.RoleName);
      result.Error =
        `Not restored: the restore was refused before anything was written, as role${failed.length === 1 ? '' : 's'} ` +
        `${failed.join(', ')} lack${failed.length === 1 ? 's' : ''} room; its destination was left as it was.`;
    }
  }
  const warnings = restoreWarnings(run.entry.name, run.authenticity, run.effective);
  if (skipped.length > 0) {
    const one = skipped.length === 1;
    warnings.push(
      `Role${one ? '' : 's'} ${skipped.join(', ')} ${one ? 'was' : 'were'} not restored: ${failed.join(', ')} lacked room and the ` +
        `restore was refused before anything was written. Free space and run Restore-AzsBackup -Name ${run.entry.name} again, or ` +
        `restore the rest one by one with ${skipped.map((n) => `-RoleName ${n}`).join(', ')}.`,
    );
  }
  run.verbose(`Restore of backup ${run.entry.name} refused: ${error.message}`);
  run.req.progress.report({ activity: run.activity, status: 'Failed', percentComplete: 100, id: 0, completed: true });
  return { results: run.results, warnings, roleErrors: [], error };
}

/**
 * After a role failed, the roles not put into place say so in their results, with no Size of what
 * was staged and thrown away, and why: a role after it in restore order (which may depend on it)
 * because the restore stopped there; a role before it because, with every role staged before the
 * first goes into place, none went in; any role, when the restore was stopped (Ctrl-C). One warning
 * names them all and how to go on.
 */
function stoppedAfter(run: RestoreRun): string | undefined {
  const failedAt = run.results.findIndex((r) => r.Status === 'Failed');
  const failed = run.results[failedAt]?.RoleName;
  const skipped = run.results.filter((r) => r.Status === 'Skipped');
  const stopped = run.req.signal?.aborted === true;
  if ((failed === undefined && !stopped) || skipped.length === 0) return undefined;
  const stop = `the restore was stopped${failed === undefined ? '' : ` while role ${failed} was being restored`}`;
  for (const r of skipped) {
    const why = stopped
      ? stop
      : run.results.indexOf(r) < failedAt
        ? `role ${failed}, after it in restore order, failed while every role was being staged, before any went into place`
        : `role ${failed}, before it in restore order, failed, and the restore stopped there`;
    r.Size = 0;
    r.Error = `Not restored: ${why}; its destination was left as it was.`;
  }
  const names = skipped.map((r) => r.RoleName);
  const one = names.length === 1;
  return (
    `Role${one ? '' : 's'} ${names.join(', ')} ${one ? 'was' : 'were'} not restored: ` +
    `${stopped ? stop : `role ${failed} failed and the restore stopped there`} (roles restored before that stay restored). ` +
    `${stopped ? 'Run' : 'Fix what failed and run'} Restore-AzsBackup -Name ${run.entry.name} again, or restore the rest one by one with ` +
    `${names.map((n) => `-RoleName ${n}`).join(', ')}.`
  );
}

/** A role the backup holds: it succeeded when the backup was made. */
function restorable(role: RoleRecord): boolean {
  return role.status === 'Succeeded' && role.files.length > 0;
}

/** Words for why a backup lacks a role it lists: its status then, and the error it failed with. */
function whyMissing(role: RoleRecord): string {
  const state = role.status === 'Succeeded' ? 'held no data' : role.status === 'Failed' ? 'failed' : `was ${role.status}`;
  return `it ${state} when the backup was made${role.error ? ` (${role.error})` : ''}`;
}

/** What to do about a role a backup lacks. */
function fromEarlierBackup(role: string): string {
  return (
    `Restore it from an earlier backup where it Succeeded: Get-InfrastructureBackup (with the same -Path) lists each backup's ` +
    `RoleStatus; then Restore-AzsBackup -Name <that backup> -RoleName ${role}.`
  );
}

/** The roles the backup lists but did not back up, as Skipped results after the restored ones, each with its error. */
function notBackedUp(
  roles: RoleRecord[],
  backupName: string,
  authenticity: Authenticity,
  restored: RestoreResultRecord[],
): Pick<RestoreOutcome, 'results' | 'roleErrors'> {
  const results = [...restored];
  const roleErrors = roles.map((role) => {
    const name = role.definition.name;
    const message = `Role ${name} is not in backup ${backupName}, so it was not restored: ${whyMissing(role)}.`;
    results.push({
      BackupName: backupName,
      RoleName: name,
      Provider: role.definition.provider,
      Status: 'Skipped',
      Destination: null,
      Size: 0,
      Duration: 0,
      Error: message,
      Authenticity: authenticity,
      DefinitionSource: 'Backup',
      DefinitionDifference: null,
    });
    return new AzsError(message, {
      errorId: 'RoleNotBackedUp',
      category: 'ObjectNotFound',
      exitCode: ExitCode.Partial,
      targetObject: name,
      recommendedAction: fromEarlierBackup(name),
    });
  });
  return { results, roleErrors };
}

/** One restore under way: the roles in the order they go back, and what became of each. */
interface RestoreRun {
  req: RestoreRequest;
  entry: { name: string; folder: string };
  dataKey: Buffer;
  /** Format 3: the repository the roles' catalogs point into, with the key that reads it. */
  repository?: OpenRepository;
  authenticity: Authenticity;
  effective: EffectiveRole[];
  /**
   * Per role: read once to check it and once to restore it, both times from local copies of the
   * share's files (spooled-target.ts), so that the restore gets what the check saw.
   */
  readTwice: boolean[];
  copies: SpooledTarget;
  /** The roles in restore order, each with the definition it is restored with. */
  selected: RoleRecord[];
  results: RestoreResultRecord[];
  /** When each role began, for its Duration. */
  started: number[];
  providers: Provider[];
  held: (HeldImport | undefined)[];
  /** What the providers told the operator while importing (ProviderContext.warn). */
  notices: string[];
  activity: string;
  verbose(message: string): void;
}

/** The succeeded roles of the backup (or the one asked for), as they are restored, in restore order. */
function rolesToRestore(roles: RoleRecord[], backupName: string, req: RestoreRequest): EffectiveRole[] {
  const held = roles.filter(restorable);
  let selected = held;
  if (req.roleName !== undefined) {
    const named = (r: RoleRecord) => r.definition.name.toLowerCase() === req.roleName!.toLowerCase();
    selected = held.filter(named);
    const failed = roles.find((r) => named(r) && !restorable(r));
    if (selected.length === 0) {
      const holds = `it holds ${held.map((r) => r.definition.name).join(', ') || 'none'}`;
      throw new AzsError(
        failed
          ? `Backup ${backupName} does not hold role ${failed.definition.name}: ${whyMissing(failed)}; ${holds}.`
          : `Backup ${backupName} holds no restorable role named ${req.roleName}; ${holds}.`,
        {
          errorId: 'RoleNotInBackup',
          category: 'ObjectNotFound',
          targetObject: req.roleName,
          recommendedAction: failed
            ? fromEarlierBackup(failed.definition.name)
            : 'Give one of the role names the backup holds (Get-InfrastructureBackup -Name <backup> shows RoleStatus).',
        },
      );
    }
  }
  return selected
    .map((r) => effectiveRole(r, req.registeredRole?.(r.definition.name), backupName))
    .sort((a, b) => a.definition.restoreOrder - b.definition.restoreOrder || a.definition.name.localeCompare(b.definition.name));
}

function newRun(
  req: RestoreRequest,
  entry: RestoreRun['entry'],
  dataKey: Buffer,
  authenticity: Authenticity,
  effective: EffectiveRole[],
  repository?: OpenRepository,
): RestoreRun {
  const selected = effective.map((e) => ({ ...e.record, definition: e.definition }));
  const results: RestoreResultRecord[] = selected.map((role, i) => ({
    BackupName: entry.name,
    RoleName: role.definition.name,
    Provider: role.definition.provider,
    Status: 'Skipped',
    // A registered role's connection string holds its unsealed password (pg_restore needs it): never shown.
    Destination:
      role.definition.path ??
      (role.definition.connectionString !== undefined ? withoutPassword(role.definition.connectionString) : undefined) ??
      role.definition.importCommand?.join(' ') ??
      null,
    Size: 0,
    Duration: 0,
    Error: null,
    Authenticity: authenticity,
    DefinitionSource: effective[i]!.source,
    DefinitionDifference: effective[i]!.difference,
  }));
  return {
    req,
    entry,
    dataKey,
    repository,
    authenticity,
    effective,
    readTwice: selected.map(() => false),
    copies: spooledTarget(req.target, req.privateDir),
    selected,
    results,
    started: new Array<number>(selected.length).fill(0),
    providers: [],
    held: [],
    notices: [],
    activity: `Restore ${entry.name}`,
    verbose: (message) => req.progress.log?.('Verbose', message),
  };
}

/** Where role i is read from: the share, or the local copies of what was read of it before. */
function source(run: RestoreRun, i: number): Target {
  return run.readTwice[i] ? run.copies.target : run.req.target;
}

/** The stored file of role i, as it lies on the share. */
async function storedFile(run: RestoreRun, i: number): Promise<Readable> {
  const file = `${run.entry.folder}/${run.selected[i]!.files[0]!.name}`;
  try {
    return await source(run, i).read(file);
  } catch (e) {
    // The backup was found (its BackupInfo.xml lists this file): a file of it gone is damage, not a name to check.
    if (!isAzsError(e) || e.errorId !== 'TargetObjectNotFound') throw e;
    throw new AzsError(`Backup ${run.entry.name} is damaged: ${file}, which its BackupInfo.xml lists, is missing from the share.`, {
      errorId: 'BackupFileMissing',
      category: 'InvalidData',
      exitCode: ExitCode.Integrity,
      targetObject: file,
      recommendedAction:
        'Restore another backup (Get-InfrastructureBackup lists them), and find out what removed the file: Test-BackupRepository checks the whole share.',
      cause: e,
    });
  }
}

/**
 * Every role checked whole before any destination changes: a full copy's role file against its
 * SHA-256 (keyless), or (format 3) the catalog and every chunk it lists, authenticated: the
 * catalog's SHA-256 alone says nothing of the packs, so a damaged pack of a later role would fail
 * the restore only after an earlier role had gone into place.
 */
async function checkEveryFile(run: RestoreRun): Promise<void> {
  for (const [i, role] of run.selected.entries()) {
    const file = role.files[0]!;
    run.req.progress.report({ activity: run.activity, status: `Checking ${file.name}`, id: 0 });
    if (run.repository) await drain(await plaintext(run, i));
    else await drain(pipeline(await storedFile(run, i), createVerifyTap(file, run.entry.name), () => {}));
  }
}

/** The plaintext of role i: its file opened, or (format 3) the chunks its catalog lists. */
async function plaintext(run: RestoreRun, i: number): Promise<Readable> {
  const opened = plaintextOf(await storedFile(run, i), run.selected[i]!, run.entry.name, run.dataKey);
  if (!run.repository) return opened;
  const { repository } = run;
  const catalog = await readCatalogFrom(run.selected[i]!.files[0]!.name, opened);
  return readCatalog(source(run, i), repository.layout, repository.keys, catalog);
}

/** The plaintext of role i, counted into its result's Size. */
async function counted(run: RestoreRun, i: number): Promise<Readable> {
  const stream = await plaintext(run, i);
  const counting = pipeline(
    stream,
    countBytes((n) => {
      run.results[i]!.Size = n;
    }),
    () => {},
  );
  recycleThrough(counting, stream);
  return counting;
}

/** Role i staged and held before its swap; or, where its provider cannot stage, authenticated whole. */
async function stage(run: RestoreRun, i: number): Promise<void> {
  const role = run.selected[i]!;
  const provider = (run.providers[i] = await createProvider(role.definition));
  if (provider.streamsIntoDestination) {
    // Its import cannot be undone, so the whole file is authenticated before it starts.
    run.readTwice[i] = true;
    await drain(await plaintext(run, i));
    return;
  }
  const stream = await counted(run, i);
  run.held[i] = holdImport((beforeCommit) =>
    provider.import(stream, { signal: run.req.signal, beforeCommit, kept: role.kept, warn: (m) => run.notices.push(m) }),
  );
  await run.held[i]!.staged;
}

/** Role i into place: the held swap goes on, or a streaming provider imports the file now. */
async function commit(run: RestoreRun, i: number): Promise<void> {
  const importing = run.held[i];
  if (importing) await importing.commit();
  else
    await run.providers[i]!.import(await counted(run, i), {
      signal: run.req.signal,
      kept: run.selected[i]!.kept,
      warn: (m) => run.notices.push(m),
    });
  const result = run.results[i]!;
  result.Status = 'Succeeded';
  result.Duration = Date.now() - run.started[i]!;
  run.verbose(
    `Role ${result.RoleName} (${result.Provider}) restored into ${result.Destination}: ${result.Size} bytes in ${seconds(result.Duration)}.`,
  );
}

/**
 * Every role staged and put into place in order (with `stageAll`, all staged before the first is
 * put into place); the first failure stops it, and is returned.
 */
async function restoreInOrder(run: RestoreRun, stageAll: boolean): Promise<AzsError | undefined> {
  const count = run.selected.length;
  const progress = (i: number, step: string): void =>
    run.req.progress.report({
      activity: run.activity,
      status: `${run.selected[i]!.definition.name} (${i + 1} of ${count})${step}`,
      percentComplete: Math.floor((i / count) * 100),
      id: 0,
    });
  for (let i = 0; i < count; i++) {
    if (run.req.signal?.aborted) return stopped(run.req.signal);
    run.started[i] = Date.now();
    progress(i, stageAll ? ': staging' : '');
    try {
      await stage(run, i);
      if (!stageAll) await commit(run, i);
    } catch (e) {
      return roleFailed(run, i, e);
    }
  }
  for (let i = 0; stageAll && i < count; i++) {
    // Stopped (Ctrl-C) while an earlier role went into place: no later destination changes.
    if (run.req.signal?.aborted) return stopped(run.req.signal);
    progress(i, ': into place');
    try {
      await commit(run, i);
    } catch (e) {
      return roleFailed(run, i, e);
    }
  }
  return undefined;
}

/** The stop the restore was asked for, as the error it ends with (the host's own, where it gave one). */
function stopped(signal: AbortSignal): AzsError {
  if (isAzsError(signal.reason)) return signal.reason;
  return new AzsError('The restore was stopped before every role was put back.', {
    errorId: 'RestoreStopped',
    category: 'OperationStopped',
    exitCode: ExitCode.Interrupted,
  });
}

/** Role i failed with `e`: recorded in its result, as an AzsError. */
function roleFailed(run: RestoreRun, i: number, e: unknown): AzsError {
  const name = run.selected[i]!.definition.name;
  const error = isAzsError(e)
    ? e
    : new AzsError(`Restoring role ${name} failed: ${(e as Error).message}`, {
        errorId: 'RoleRestoreFailed',
        category: 'NotSpecified',
        targetObject: name,
        cause: e,
      });
  run.results[i]!.Status = 'Failed';
  run.results[i]!.Error = error.message;
  return error;
}

function restoreWarnings(name: string, authenticity: Authenticity, roles: EffectiveRole[]): string[] {
  const warnings = roles
    .filter((r) => r.difference)
    .map((r) => `Role ${r.definition.name} is restored as this machine registered it, not as backup ${name} recorded it: ${r.difference}.`);
  if (authenticity === 'Unauthenticated') {
    warnings.unshift(
      `Backup ${name} was restored without proof of who made it (-AllowUnauthenticated): anyone who could write to the share and had the public certificate could have made it.`,
    );
  }
  return warnings;
}
