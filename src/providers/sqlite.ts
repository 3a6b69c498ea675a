import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AzsError, ExitCode, isAzsError } from '../errors.js';
import { ensurePrivateDir } from '../process/private-dir.js';
import { makeFolders } from '../fs/make-folders.js';
import { processesUsing, stillInUse } from '../process/open-files.js';
import { providerFsError } from './fs-error.js';
import { recyclerOf } from '../memory/recycling-readable.js';
import { reportingWrites } from '../memory/reporting-writes.js';
import { copyXattrs } from '../native/folder-stat.js';
import type { Provider, ProviderContext, ProviderDescription, RoleDefinition } from './provider.js';
import { recoverSwaps, resolveDestination, Staging } from './swap.js';

/**
 * A live SQLite database, copied with SQLite's online backup API and restored by swapping in a
 * checked copy.
 */

/** The part of better-sqlite3 we use (the package ships no type declarations). */
interface SqliteDatabase {
  backup(file: string, options?: { progress?: (p: { totalPages: number; remainingPages: number }) => number }): Promise<unknown>;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  exec(source: string): unknown;
  close(): void;
}
type SqliteConstructor = new (file: string, options?: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => SqliteDatabase;

let ctor: SqliteConstructor | undefined;
function openDatabase(file: string, options: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }): SqliteDatabase {
  // Loaded on first use: the native module costs start-up time every other cmdlet should not pay.
  ctor ??= createRequire(import.meta.url)('better-sqlite3') as SqliteConstructor;
  return new ctor(file, options);
}

/**
 * How long the copy waits for a writer's lock before failing, in ms. TEST ONLY:
 * AZSBACKUP_TEST_SQLITE_BUSY_MS shortens it, so that the test of a lock held past the wait need
 * not wait 30 s (never set it in production).
 */
function busyTimeoutMs(): number {
  const test = Number(process.env.AZSBACKUP_TEST_SQLITE_BUSY_MS);
  return Number.isSafeInteger(test) && test > 0 ? test : 30_000;
}
/** Companion files SQLite would apply to whatever database sits at the main path. */
const COMPANIONS = ['-wal', '-shm', '-journal'];

function sqliteError(
  message: string,
  errorId: string,
  e: unknown,
  target: string,
  recommendedAction: string,
  category: AzsError['category'] = 'ReadError',
): AzsError {
  return providerFsError(e, { message, errorId, target, recommendedAction, category, fullCodes: ['SQLITE_FULL'] });
}

export class SqliteProvider implements Provider {
  readonly streamsIntoDestination = false;

  constructor(private readonly role: RoleDefinition & { path: string }) {}

  describe(): ProviderDescription {
    return { provider: 'sqlite', source: this.role.path };
  }

  async export(ctx: ProviderContext = {}): Promise<Readable> {
    const file = this.role.path;
    // A restore killed mid-swap may have left the database without its -wal: put right first.
    await recoverSwaps(await resolveDestination(file)).catch(() => undefined);
    const st = await fs.stat(file).catch((e: unknown) => {
      throw new AzsError(`The database '${file}' of role '${this.role.name}' cannot be read: ${(e as Error).message}`, {
        errorId: 'SqliteDatabaseNotFound',
        category: 'ObjectNotFound',
        exitCode: ExitCode.Failure,
        targetObject: file,
        cause: e,
        recommendedAction: 'Check that the database exists on this machine, or register the role again with the right -DatabasePath.',
      });
    });
    if (!st.isFile()) {
      throw new AzsError(`The path '${file}' of role '${this.role.name}' is not a database file.`, {
        errorId: 'SqliteDatabaseNotAFile',
        category: 'InvalidArgument',
        exitCode: ExitCode.Failure,
        targetObject: file,
        recommendedAction: 'Register the database file itself; use the directory provider for folders.',
      });
    }
    // A fresh machine has no database to take them from: its service must still be able to open it.
    ctx.keep?.({ Mode: (st.mode & 0o7777).toString(8).padStart(4, '0'), Uid: String(st.uid), Gid: String(st.gid) });
    const copyFolder: CopyFolder = ctx.privateDir
      ? { path: await ensurePrivateDir(ctx.privateDir), what: "AZSBACKUP_HOME's private folder", setBy: 'AZSBACKUP_HOME' }
      : { path: os.tmpdir(), what: 'the temporary folder (TMPDIR)', setBy: 'TMPDIR' };
    const tmpDir = await fs.mkdtemp(path.join(copyFolder.path, 'azs-sqlite-')).catch((e: unknown) => {
      throw noRoomForCopy(e, copyFolder, file, this.role.name) ?? e;
    });
    const copy = path.join(tmpDir, 'copy.sqlite');
    try {
      ctx.signal?.throwIfAborted();
      await copyChecked(file, copy, this.role.name);
    } catch (e) {
      await fs.rm(tmpDir, { recursive: true, force: true });
      throw noRoomForCopy(e, copyFolder, file, this.role.name) ?? exportFailure(e, file, this.role.name);
    }
    const stream = createReadStream(copy, { signal: ctx.signal });
    stream.once('close', () => void fs.rm(tmpDir, { recursive: true, force: true }));
    // Its failures are the provider's, typed as such (Provider.export): a raw errno error would
    // pass further on for the share's own (EIO reads as an unreachable share).
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    stream.once('error', (e: Error) =>
      out.destroy(
        e.name === 'AbortError'
          ? new AzsError('The export was cancelled.', { errorId: 'SqliteExportCancelled', category: 'OperationStopped' })
          : sqliteError(
              `Reading the copy of the database '${file}' failed`,
              'SqliteExportFailed',
              e,
              file,
              'Check the temporary folder (its disk and free space), then run the backup again.',
            ),
      ),
    );
    out.once('close', () => stream.destroy());
    return stream.pipe(out);
  }

  async import(data: Readable, ctx: ProviderContext = {}): Promise<void> {
    // A registered path that is a symbolic link (e.g. /var/lib/id.db -> /data/id.db) stays a link:
    // the real file is the one replaced, and its -wal and -shm are the ones beside it.
    const dest = await resolveDestination(ctx.destination ?? this.role.path);
    const folder = path.dirname(dest);
    const folderWasThere = await fs.lstat(folder).then(
      () => true,
      () => false,
    );
    await makeFolders(folder).catch((e: unknown) => {
      data.resume();
      throw sqliteError(
        `Making the folder '${folder}' to restore the database into failed`,
        'SqliteImportFailed',
        e,
        dest,
        'Make the folder of the database writable (it may be on a read-only file system), then restore again.',
        'WriteError',
      );
    });
    if (!folderWasThere) await giveFolder(folder, ctx.kept);
    await recoverSwaps(dest);
    // Staged beside the destination so the final rename stays on one file system.
    const staging = await Staging.begin(dest).catch((e: unknown) => {
      data.resume();
      throw sqliteError(
        `Preparing to restore the database '${dest}' failed; the database was left as it was`,
        'SqliteImportFailed',
        e,
        dest,
        'Make the folder of the database writable (it may be on a read-only file system), then restore again.',
        'WriteError',
      );
    });
    const candidate = path.join(staging.path, path.basename(dest));
    try {
      await receive(data, candidate, ctx);
      checkIntegrity(candidate);
      await matchOwnership(candidate, dest, ctx.kept);
      await ctx.beforeCommit?.();
      settle(dest);
      const users = ctx.warn ? processesUsing(dest, false) : [];
      await staging.swapFileIn(candidate, COMPANIONS).catch((e: unknown) => {
        throw sqliteError(
          `Putting the restored database in place at '${dest}' failed; the database was left as it was`,
          'SqliteImportFailed',
          e,
          dest,
          'Check the permissions of the destination folder and that no program holds the database open, then restore again.',
          'WriteError',
        );
      });
      if (users.length > 0) ctx.warn?.(stillInUse(this.role.name, dest, users));
    } catch (e) {
      await staging.discard().catch(() => undefined);
      throw e;
    }
  }
}

/** A consistent copy of the database `file` at `copy`, through SQLite's online backup API. */
async function copyDatabase(file: string, copy: string): Promise<void> {
  const db = openDatabase(file, { readonly: true, fileMustExist: true, timeout: busyTimeoutMs() });
  try {
    // The read transaction is taken here, where a lock held past busyTimeoutMs() fails as
    // SQLITE_BUSY. Left to the backup, such a step ends it with nothing copied and the copy's
    // file removed (better-sqlite3 reads BUSY as "no pages left"), and a lock taken between
    // its steps is waited for again and again, for as long as it is held.
    db.exec('BEGIN');
    db.pragma('schema_version');
    // Copying every page in one step, inside that transaction, makes the copy a consistent
    // snapshot even while others write (in WAL mode they are not even held up).
    await db.backup(copy, { progress: () => 0x7fffffff });
  } finally {
    db.close();
  }
}

/** Opens `file` so that it may write, which rolls back a hot -journal (under SQLite's locks), and closes it. */
function rollBackHotJournal(file: string): void {
  const db = openDatabase(file, { fileMustExist: true, timeout: busyTimeoutMs() });
  try {
    db.pragma('schema_version');
  } finally {
    db.close();
  }
}

async function receive(data: Readable, file: string, { signal }: ProviderContext): Promise<void> {
  const recycle = recyclerOf(data);
  try {
    const out = createWriteStream(file, { mode: 0o600 });
    await pipeline(data, recycle ? reportingWrites(out, recycle) : out, { signal });
    // Durable before it can replace the old database.
    const fh = await fs.open(file, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') {
      throw new AzsError('The restore was cancelled; the database was left as it was.', {
        errorId: 'SqliteImportCancelled',
        category: 'OperationStopped',
      });
    }
    if (isAzsError(e)) throw e;
    throw sqliteError(
      'Receiving the database failed; the database was left as it was',
      'SqliteImportInputFailed',
      e,
      file,
      'Check the share and the backup with Test-InfrastructureBackup, then restore again.',
    );
  }
}

/**
 * Errors with which the check stops for want of what the database's application gives SQLite at
 * run time (its own collations, functions, virtual table modules), not for damage.
 */
const NEEDS_ITS_APPLICATION = /no such collation sequence|unknown function|no such function|no such module/;

/**
 * SQLite's integrity_check of `file`: 'ok', or its first complaint; throws when SQLite cannot open
 * it. A database whose schema needs its application cannot be checked here: SQLite has read its
 * header and schema, and that has to do (refusing it would refuse every backup of it).
 */
function integrityOf(file: string): unknown {
  const db = openDatabase(file, { fileMustExist: true });
  try {
    return db.pragma('integrity_check', { simple: true });
  } catch (e) {
    if (NEEDS_ITS_APPLICATION.test(String((e as Error)?.message))) return 'ok';
    throw e;
  } finally {
    db.close();
  }
}

function checkIntegrity(file: string): void {
  let result: unknown;
  try {
    result = integrityOf(file);
  } catch (e) {
    throw sqliteError(
      'The restored data is not a readable SQLite database; the database was left as it was',
      'SqliteImportCorrupt',
      e,
      file,
      'Check the backup with Test-InfrastructureBackup and restore another one.',
      'InvalidData',
    );
  }
  if (result !== 'ok') {
    throw new AzsError(`The restored database failed SQLite's integrity check (${String(result)}); the database was left as it was.`, {
      errorId: 'SqliteImportCorrupt',
      category: 'InvalidData',
      targetObject: file,
      recommendedAction: 'Restore another backup; this one holds a damaged database.',
    });
  }
}

/**
 * Folds the old database's -wal into its main file (and rolls back a hot -journal), so that the
 * main file alone is the whole old database while the swap moves its companions aside: a kill
 * then leaves the old database as it was, not without its last transactions. A file SQLite cannot
 * open is left as it is.
 */
function settle(dest: string): void {
  let db: SqliteDatabase | undefined;
  try {
    db = openDatabase(dest, { fileMustExist: true, timeout: busyTimeoutMs() });
    db.pragma('schema_version');
    db.pragma('wal_checkpoint(TRUNCATE)');
  } catch {
    // Not there, or not a database: there is nothing of it to keep whole.
  } finally {
    db?.close();
  }
}

/**
 * A restored database keeps the owner, mode and extended attributes (an ACL that lets a service
 * account in) of the one it replaces, so its service can still open it; where there is none (a
 * freshly redeployed machine), the owner and mode its backup kept. The mode goes last: with an
 * ACL, its group bits are the ACL's mask.
 */
async function matchOwnership(candidate: string, dest: string, kept: ProviderContext['kept']): Promise<void> {
  const old = await fs.stat(dest).catch(() => undefined);
  if (old) copyXattrs(dest, candidate);
  const mode = old ? old.mode & 0o7777 : keptNumber(kept?.Mode, 8);
  const uid = old ? old.uid : keptNumber(kept?.Uid, 10);
  const gid = old ? old.gid : keptNumber(kept?.Gid, 10);
  if (mode !== undefined) await fs.chmod(candidate, mode);
  if (process.getuid?.() === 0 && uid !== undefined && gid !== undefined) await fs.chown(candidate, uid, gid);
}

/**
 * The folder the restore had to make for the database (a redeployed machine lost it too) goes to
 * the database's owner: its service writes the -wal and -shm (or -journal) there. Folders above
 * it, made too, stay root's; reaching through them is enough.
 */
async function giveFolder(dir: string, kept: ProviderContext['kept']): Promise<void> {
  const uid = keptNumber(kept?.Uid, 10);
  const gid = keptNumber(kept?.Gid, 10);
  if (process.getuid?.() === 0 && uid !== undefined && gid !== undefined) await fs.chown(dir, uid, gid);
}

/** A number BackupInfo.xml kept, or undefined when it is absent or not a plain number. */
function keptNumber(value: string | undefined, radix: 8 | 10): number | undefined {
  if (value === undefined || !(radix === 8 ? /^[0-7]{1,4}$/ : /^\d{1,10}$/).test(value)) return undefined;
  return parseInt(value, radix);
}

/**
 * A consistent copy of the live database at `copy`, checked as a restore will check it: a damaged
 * database fails its backup now, rather than every backup since the damage failing its restore.
 */
async function copyChecked(file: string, copy: string, role: string): Promise<void> {
  await copyDatabase(file, copy).catch(async (e: unknown) => {
    if ((e as NodeJS.ErrnoException)?.code !== 'SQLITE_READONLY_ROLLBACK') throw e;
    // A writer killed mid-transaction left a hot -journal, which only a connection that may
    // write can roll back, as the service's own next open would: rolled back, then copied.
    rollBackHotJournal(file);
    await copyDatabase(file, copy);
  });
  // The check the restore applies (checkIntegrity).
  const verdict = integrityOf(copy);
  if (verdict !== 'ok') {
    throw new AzsError(
      `The database '${file}' of role '${role}' fails SQLite's integrity check (${String(verdict)}); a restore would refuse its copy, so none was kept.`,
      {
        errorId: 'SqliteDatabaseCorrupt',
        category: 'InvalidData',
        targetObject: file,
        recommendedAction:
          "The live database is damaged: repair it (the sqlite3 shell's .recover) or restore an earlier backup, then run the backup again.",
      },
    );
  }
}

/** Where the consistent copy a backup reads is made, as the operator knows it. */
interface CopyFolder {
  path: string;
  what: string;
  /** The variable that moves it. */
  setBy: 'AZSBACKUP_HOME' | 'TMPDIR';
}

/**
 * The copy's own folder full, said as such: SQLite reports it as "database or disk is full", which
 * beside the live database's name sends the operator to the database's disk, which has room.
 */
function noRoomForCopy(e: unknown, folder: CopyFolder, file: string, role: string): AzsError | undefined {
  const code = String((e as NodeJS.ErrnoException)?.code);
  if (!/^(SQLITE_FULL|ENOSPC|EDQUOT)$/.test(code)) return undefined;
  return new AzsError(
    `There is no room in ${folder.what} '${folder.path}' for the consistent copy of the database '${file}' of role '${role}' that the backup reads (${(e as Error).message}).`,
    {
      errorId: 'SqliteCopyNoRoom',
      category: 'QuotaExceeded',
      exitCode: ExitCode.Capacity,
      targetObject: folder.path,
      cause: e,
      recommendedAction: `Make room on the file system of '${folder.path}' (the copy takes about as much as the database), or point ${folder.setBy} at one with room, then run the backup again.`,
    },
  );
}

/** What stopped the copy, as the provider's error. */
function exportFailure(e: unknown, file: string, role: string): AzsError {
  if ((e as Error)?.name === 'AbortError') {
    return new AzsError('The export was cancelled.', { errorId: 'SqliteExportCancelled', category: 'OperationStopped' });
  }
  if (/^SQLITE_(BUSY|LOCKED)/.test(String((e as NodeJS.ErrnoException)?.code))) {
    return new AzsError(
      `The database '${file}' of role '${role}' stayed locked by another program for longer than ${busyTimeoutMs() / 1000} s; nothing was copied.`,
      {
        errorId: 'SqliteDatabaseLocked',
        category: 'ResourceBusy',
        exitCode: ExitCode.Failure,
        targetObject: file,
        cause: e,
        recommendedAction:
          'Find the program holding the database (a transaction left open, a service in locking_mode=EXCLUSIVE) and run the backup again when it lets go.',
      },
    );
  }
  return sqliteError(
    `Copying the database '${file}' failed`,
    'SqliteExportFailed',
    e,
    file,
    'Check that the file is a SQLite database the service can read; if it is locked for long, retry when the writer is idle.',
  );
}
