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
import { seconds, tracedTarget } from './traced-target.js';
import { openBackup } from './open-backup.js';
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
   * A backup records no database password. This gives a recorded role the secrets this machine
   * holds for it (the sealed -DatabasePassword of the same role, registered here), if any.
   */
  withLocalSecrets?: (role: RoleDefinition) => RoleDefinition;
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
}

export interface RestoreOutcome {
  results: RestoreResultRecord[];
  error?: AzsError;
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
  const { info, entry, dataKey } = await openBackup(req.target, req.name, req.material);
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
  selected = [...selected].sort((a, b) => a.definition.restoreOrder - b.definition.restoreOrder || a.definition.name.localeCompare(b.definition.name));

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

  const results: RestoreResultRecord[] = selected.map((role) => ({
    BackupName: entry.name, RoleName: role.definition.name, Provider: role.definition.provider, Status: 'Skipped',
    Destination: role.definition.path ?? role.definition.connectionString ?? role.definition.importCommand?.join(' ') ?? null,
    Size: 0, Duration: 0, Error: null,
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
    const provider = (providers[i] = await createProvider(req.withLocalSecrets?.(definition) ?? definition));
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
  return { results, error: failure };
}
