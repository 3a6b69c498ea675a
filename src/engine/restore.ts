import { realpathSync } from 'node:fs';
import path from 'node:path';
import { pipeline, Writable, type Readable } from 'node:stream';
import { AzsError, isAzsError } from '../errors.js';
import type { RoleRecord } from '../catalog/backup-info.js';
import type { DecryptWith } from '../crypto/recipient.js';
import { openRoleStream } from '../pipeline/role-stream.js';
import { createProvider } from '../providers/index.js';
import type { Provider, RoleDefinition } from '../providers/provider.js';
import type { ProgressReporter } from '../progress.js';
import { canRecycle } from '../memory/recycling-readable.js';
import type { Target } from '../targets/target.js';
import { withoutPassword } from '../providers/pgconn.js';
import { seconds, tracedTarget } from './traced-target.js';
import { openBackup, type Authenticity } from './open-backup.js';
import { createVerifyTap } from './verify-tap.js';
import { countBytes } from './byte-counter.js';

/**
 * Restores the roles of one backup in their declared order, from the role catalog the backup
 * recorded, so a freshly redeployed machine needs nothing but the share and the decryption material.
 * Every chunk is authenticated before its bytes reach a provider, and providers swap a role into
 * place only on a clean end; providers that cannot stage get a verified file (a first full pass).
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
  error?: AzsError;
}

/** The fields of a role definition that decide where data goes and what runs. */
const DECISIVE: (keyof RoleDefinition)[] = ['provider', 'path', 'exportCommand', 'importCommand', 'connectionString', 'timeoutSeconds', 'restoreOrder'];

/** Where a registered role differs from a recorded one, e.g. "path: /etc/pki/ca (backup: /tmp/x)"; passwords never compared. */
function definitionDifference(registered: RoleDefinition, recorded: RoleDefinition): string | null {
  const shown = (d: RoleDefinition, k: keyof RoleDefinition): string => {
    const v = k === 'connectionString' && d.connectionString ? withoutPassword(d.connectionString) : d[k];
    return v === undefined ? '(none)' : Array.isArray(v) ? JSON.stringify(v) : String(v);
  };
  const differing = DECISIVE.filter((k) => shown(registered, k) !== shown(recorded, k));
  return differing.length ? differing.map((k) => `${k}: ${shown(registered, k)} (backup: ${shown(recorded, k)})`).join('; ') : null;
}

/** The definition a role is restored with: this machine's registration wins over the backup's record. */
function effectiveRole(record: RoleRecord, registered: RoleDefinition | undefined): EffectiveRole {
  if (!registered) return { record, definition: record.definition, source: 'Backup', difference: null };
  return { record, definition: { ...registered, name: record.definition.name }, source: 'Registered', difference: definitionDifference(registered, record.definition) };
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
 * file (which the keyless checks use, and which cost a restore a tenth of its time).
 */
function plaintextOf(source: Readable, role: RoleRecord, backupName: string, dataKey: Buffer): Plaintext {
  const file = role.files[0]!;
  const opening = openRoleStream({ dataKey, backupName, roleName: role.definition.name, fileName: file.name });
  if (canRecycle(source)) opening.handInputBackTo(source.recycle);
  return { stream: pipeline(source, opening, () => {}), recycle: opening.recycle };
}

/** A role's plaintext, and where its reader hands chunks back when done with them (ProviderContext.recycle). */
interface Plaintext {
  stream: Readable;
  recycle?: (chunk: Buffer) => void;
}

async function drain({ stream, recycle }: Plaintext): Promise<number> {
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
  const places = roles.map((r) => r.definition.path).filter((p): p is string => p !== undefined).map(realOrResolved);
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
  const staged = new Promise<true>((resolve) => { reached = () => resolve(true); });
  let release!: (go: AzsError | undefined) => void;
  const decision = new Promise<AzsError | undefined>((resolve) => { release = resolve; });
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
  const verbose = (message: string) => req.progress.log?.('Verbose', message);
  // Nothing the backup records (providers, paths, commands, owners, modes) is used before this proves it ours.
  const { info, entry, dataKey, authenticity } = await openBackup(req.target, req.name, req.material, { allowUnauthenticated: req.allowUnauthenticated });
  const restorable = info.roles.filter((r) => r.status === 'Succeeded' && r.files.length > 0);
  let selected = restorable;
  if (req.roleName !== undefined) {
    selected = restorable.filter((r) => r.definition.name.toLowerCase() === req.roleName!.toLowerCase());
    if (selected.length === 0) {
      throw new AzsError(`Backup ${entry.name} holds no restorable role named ${req.roleName}; it holds ${restorable.map((r) => r.definition.name).join(', ') || 'none'}.`, {
        errorId: 'RoleNotInBackup',
        category: 'ObjectNotFound',
        targetObject: req.roleName,
        recommendedAction: 'Give one of the role names the backup holds (Get-InfrastructureBackup -Name <backup> shows RoleStatus).',
      });
    }
  }
  const effective = selected.map((r) => effectiveRole(r, req.registeredRole?.(r.definition.name)))
    .sort((a, b) => a.definition.restoreOrder - b.definition.restoreOrder || a.definition.name.localeCompare(b.definition.name));
  selected = effective.map((e) => ({ ...e.record, definition: e.definition }));
  const warnings = restoreWarnings(entry.name, authenticity!, effective);

  const activity = `Restore ${entry.name}`;
  const pathOf = (role: RoleRecord): string => `${entry.folder}/${role.files[0]!.name}`;
  const read = async (role: RoleRecord): Promise<Plaintext> => plaintextOf(await req.target.read(pathOf(role)), role, entry.name, dataKey!);

  // A damaged later role must not leave earlier ones restored from a backup that cannot be restored
  // whole. So every role is first staged (or, where its provider cannot stage, verified), and only
  // then do the destinations change, in order: a role file is read from the share once where it
  // can be staged, rather than once to check it and again to restore it. Roles whose destinations
  // lie inside one another cannot be staged side by side (the outer one's swap would carry the
  // inner one's staging away), so those restore one after the other behind a keyless check of
  // every file first.
  const sideBySide = !destinationsNest(selected);
  if (selected.length > 1 && !sideBySide) {
    for (const role of selected) {
      const file = role.files[0]!;
      req.progress.report({ activity, status: `Checking ${file.name}`, id: 0 });
      await drain({ stream: pipeline(await req.target.read(pathOf(role)), createVerifyTap(file, entry.name), () => {}) });
    }
  }

  const results: RestoreResultRecord[] = selected.map((role, i) => ({
    BackupName: entry.name, RoleName: role.definition.name, Provider: role.definition.provider, Status: 'Skipped',
    Destination: role.definition.path ?? role.definition.connectionString ?? role.definition.importCommand?.join(' ') ?? null,
    Size: 0, Duration: 0, Error: null, Authenticity: authenticity!, DefinitionSource: effective[i]!.source, DefinitionDifference: effective[i]!.difference,
  }));
  const failed = (i: number, e: unknown): AzsError => {
    const error = isAzsError(e) ? e : new AzsError(`Restoring role ${selected[i]!.definition.name} failed: ${(e as Error).message}`, {
      errorId: 'RoleRestoreFailed', category: 'NotSpecified', targetObject: selected[i]!.definition.name, cause: e,
    });
    results[i]!.Status = 'Failed';
    results[i]!.Error = error.message;
    return error;
  };
  const started = new Array<number>(selected.length).fill(0);

  const counted = async (i: number): Promise<Plaintext> => {
    const { stream, recycle } = await read(selected[i]!);
    return { stream: pipeline(stream, countBytes((n) => { results[i]!.Size = n; }), () => {}), recycle };
  };
  const providers: Provider[] = [];
  const held: (HeldImport | undefined)[] = [];
  /** Role i staged and held before its swap; or, where its provider cannot stage, authenticated whole. */
  const stage = async (i: number): Promise<void> => {
    const definition = selected[i]!.definition;
    const provider = (providers[i] = await createProvider(definition));
    if (provider.streamsIntoDestination) {
      // Its import cannot be undone, so the whole file is authenticated before it starts.
      await drain(await read(selected[i]!));
      return;
    }
    const { stream, recycle } = await counted(i);
    held[i] = holdImport((beforeCommit) => provider.import(stream, { signal: req.signal, beforeCommit, recycle, kept: selected[i]!.kept }));
    await held[i]!.staged;
  };
  /** Role i into place: the held swap goes on, or a streaming provider imports the file now. */
  const commit = async (i: number): Promise<void> => {
    const importing = held[i];
    if (importing) await importing.commit();
    else {
      const { stream, recycle } = await counted(i);
      await providers[i]!.import(stream, { signal: req.signal, recycle, kept: selected[i]!.kept });
    }
    results[i]!.Status = 'Succeeded';
    results[i]!.Duration = Date.now() - started[i]!;
    verbose(`Role ${results[i]!.RoleName} (${results[i]!.Provider}) restored into ${results[i]!.Destination}: ${results[i]!.Size} bytes in ${seconds(results[i]!.Duration)}.`);
  };

  // Several roles: all staged first, then all swapped. One role, or nested ones: each in turn.
  const stageAll = sideBySide && selected.length > 1;
  let failure: AzsError | undefined;
  const progress = (i: number, step: string): void => req.progress.report({
    activity, status: `${selected[i]!.definition.name} (${i + 1} of ${selected.length})${step}`, percentComplete: Math.floor((i / selected.length) * 100), id: 0,
  });
  verbose(`Restore of backup ${entry.name}: ${selected.length} role${selected.length === 1 ? '' : 's'} (${selected.map((r) => r.definition.name).join(', ')}) from ${entry.folder}${stageAll ? ', all staged before the first goes into place' : ''}.`);
  for (let i = 0; i < selected.length && !failure; i++) {
    started[i] = Date.now();
    progress(i, stageAll ? ': staging' : '');
    try {
      await stage(i);
      if (!stageAll) await commit(i);
    } catch (e) {
      failure = failed(i, e);
    }
  }
  for (let i = 0; stageAll && !failure && i < selected.length; i++) {
    progress(i, ': into place');
    try {
      await commit(i);
    } catch (e) {
      failure = failed(i, e);
    }
  }
  // Whatever is still held after a failure is given up: its staging goes, its destination stays.
  for (const [i, h] of held.entries()) if (h && results[i]!.Status === 'Skipped') await h.abandon(failure!);
  if (failure) verbose(`Restore of backup ${entry.name} failed: ${failure.message}`);
  req.progress.report({ activity, status: failure ? 'Failed' : 'Done', percentComplete: 100, id: 0, completed: true });
  return { results, warnings, error: failure };
}

function restoreWarnings(name: string, authenticity: Authenticity, roles: EffectiveRole[]): string[] {
  const warnings = roles.filter((r) => r.difference).map((r) =>
    `Role ${r.definition.name} is restored as this machine registered it, not as backup ${name} recorded it: ${r.difference}.`);
  if (authenticity === 'Unauthenticated') {
    warnings.unshift(`Backup ${name} was restored without proof of who made it (-AllowUnauthenticated): anyone who could write to the share and had the public certificate could have made it.`);
  }
  return warnings;
}
