import { pipeline, Writable, type Readable } from 'node:stream';
import { AzsError, isAzsError } from '../errors.js';
import type { RoleRecord } from '../catalog/backup-info.js';
import type { DecryptWith } from '../crypto/recipient.js';
import { openRoleStream } from '../pipeline/role-stream.js';
import { createProvider } from '../providers/index.js';
import type { ProgressReporter } from '../progress.js';
import type { Target } from '../targets/target.js';
import { openBackup } from './open-backup.js';
import { createVerifyTap } from './verify-tap.js';
import { countBytes } from './byte-counter.js';

/**
 * Restores the roles of one backup in their declared order, from the role catalog the backup
 * recorded, so a freshly redeployed machine needs nothing but the share and the decryption material.
 * Every chunk is authenticated before its bytes reach a provider, and providers swap a role into
 * place only on a clean end; providers that cannot stage get a verified file (a first full pass).
 * The first failing role stops the restore: later roles may depend on it.
 */

export interface RestoreRequest {
  target: Target;
  name: string;
  material: DecryptWith;
  roleName?: string;
  progress: ProgressReporter;
  signal?: AbortSignal;
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
function plaintextOf(source: Readable, role: RoleRecord, backupName: string, dataKey: Buffer): Readable {
  const file = role.files[0]!;
  return pipeline(source, openRoleStream({ dataKey, backupName, roleName: role.definition.name, fileName: file.name }), () => {});
}

async function drain(stream: Readable): Promise<number> {
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    pipeline(stream, new Writable({ write(chunk: Buffer, _e, done) { bytes += chunk.length; done(); } }), (e) => (e ? reject(e) : resolve()));
  });
  return bytes;
}

export async function runRestore(req: RestoreRequest): Promise<RestoreOutcome> {
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
  // BackupInfo.xml is authenticated by now, so its sizes and hashes are the committed truth. Check
  // every selected file against them before the first role is touched: a damaged later role must
  // not leave earlier ones restored from a backup that cannot be restored whole.
  // (One role alone needs no separate pass: its own stream is verified before the swap.)
  for (const role of selected.length > 1 ? selected : []) {
    const file = role.files[0]!;
    req.progress.report({ activity, status: `Checking ${file.name}`, id: 0 });
    await drain(pipeline(await req.target.read(`${entry.folder}/${file.name}`), createVerifyTap(file, entry.name), () => {}));
  }
  const results: RestoreResultRecord[] = [];
  let failure: AzsError | undefined;
  for (const [i, role] of selected.entries()) {
    const def = role.definition;
    const result: RestoreResultRecord = {
      BackupName: entry.name, RoleName: def.name, Provider: def.provider, Status: 'Skipped',
      Destination: def.path ?? def.connectionString ?? def.importCommand?.join(' ') ?? null, Size: 0, Duration: 0, Error: null,
    };
    results.push(result);
    if (failure) continue;
    const started = Date.now();
    req.progress.report({ activity, status: `${def.name} (${i + 1} of ${selected.length})`, percentComplete: Math.floor((i / selected.length) * 100), id: 0 });
    try {
      const provider = await createProvider(def);
      const path = `${entry.folder}/${role.files[0]!.name}`;
      if (provider.streamsIntoDestination) {
        await drain(plaintextOf(await req.target.read(path), role, entry.name, dataKey!));
      }
      let size = 0;
      const plaintext = pipeline(plaintextOf(await req.target.read(path), role, entry.name, dataKey!), countBytes((n) => { size = n; }), () => {});
      await provider.import(plaintext, { signal: req.signal });
      result.Status = 'Succeeded';
      result.Size = size;
    } catch (e) {
      failure = isAzsError(e) ? e : new AzsError(`Restoring role ${def.name} failed: ${(e as Error).message}`, {
        errorId: 'RoleRestoreFailed', category: 'NotSpecified', targetObject: def.name, cause: e,
      });
      result.Status = 'Failed';
      result.Error = failure.message;
    }
    result.Duration = Date.now() - started;
  }
  req.progress.report({ activity, status: failure ? 'Failed' : 'Done', percentComplete: 100, id: 0, completed: true });
  return { results, error: failure };
}
