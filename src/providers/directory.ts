import { constants as fsConstants, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { AzsError, ExitCode, isAzsError } from '../errors.js';
import { flushToDisk } from '../fs/flush-to-disk.js';
import { makeFolders } from '../fs/make-folders.js';
import { mountTable } from '../fs/mount-table.js';
import { recycleThrough, recyclerOf } from '../memory/recycling-readable.js';
import { importIntoProgram } from './child.js';
import { processesUsing, stillInUse } from '../process/open-files.js';
import { providerFsError } from './fs-error.js';
import { earlyFailure } from './input.js';
import type { ArchiveExport, ArchiveMember, Provider, ProviderContext, ProviderDescription, RoleDefinition } from './provider.js';
import { readable, TarFormatError, TarScanner, type TarEntry } from './tar-scanner.js';
import { ArchiveRouter, type RouteStep } from './archive-router.js';
import { DIRECT_MIN_BYTES, DirectFiles, type DirectFile } from './direct-files.js';
import { mountsAtOrBelow, recoverSwaps, resolveDestination, Staging } from './swap.js';
import { endOfArchive } from './tar-header.js';
import type { SlabPool } from '../memory/slab-pool.js';
import { directoryTar, SourceAttributesTooLarge, SourceChangedError, SourceReadError, tarPool, walkTree } from './tar-writer.js';

/**
 * A folder tree as a tar stream. Import trusts nothing in the archive: every entry is checked
 * before GNU tar sees it, and one bad entry fails the whole restore (a backup that tries to write
 * outside its folder is an attack or a corruption, never something to half-apply).
 */

function unsafeEntry(entryPath: string, why: string): AzsError {
  return new AzsError(
    `The backup archive contains the entry '${entryPath}', which ${why}; the restore was refused and nothing was changed.`,
    {
      errorId: 'UnsafeArchiveEntry',
      category: 'InvalidData',
      exitCode: ExitCode.Integrity,
      targetObject: entryPath,
      recommendedAction:
        'Do not restore this backup: it was tampered with or was not made by AzsBackup. Restore an earlier backup and check who can ' +
        'write to the share.',
    },
  );
}

// A FIFO carries no data: GNU tar makes it and restoreMetadata removes it by its path, so it is
// held to the same checks.
const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link', 'FIFO']);

/** Relative, normalised, without './' or a trailing '/'; '' is the root. */
function relativeOf(p: string): string {
  const n = path.posix.normalize(p);
  return n === '.' || n === './' ? '' : n.replace(/^\.\//, '').replace(/\/+$/, '');
}

function ancestors(rel: string): string[] {
  const parts = rel.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/**
 * Tracks what the archive has created so far. The staging folder starts empty, so the only
 * symbolic links an entry could be written through are ones the archive itself made.
 */
class EntryGuard {
  private readonly symlinks = new Set<string>();
  /** Every path an entry has made a folder of, by naming it or by being inside it. */
  private readonly folders = new Set<string>();
  readonly dirs: { rel: string; mode?: number; mtime?: Date; mtimeNs?: bigint; atime?: Date; uid?: number; gid?: number }[] = [];
  readonly links: { rel: string; mtime?: Date; mtimeNs?: bigint; atime?: Date; uid?: number; gid?: number }[] = [];

  /** Returns the refusal, or undefined when the entry may be extracted. */
  check(e: TarEntry): AzsError | undefined {
    // Every check goes by the name's bytes (rawPath); messages show it as UTF-8.
    const raw = e.rawPath;
    const shown = e.path;
    if (raw.startsWith('/') || /^[A-Za-z]:[\\/]/.test(raw)) return unsafeEntry(shown, 'has an absolute path');
    if (raw.split('/').includes('..')) return unsafeEntry(shown, "contains '..'");
    if (raw.includes('\0')) return unsafeEntry(shown, 'contains a NUL character');
    if (!ALLOWED_TYPES.has(e.type)) {
      return new AzsError(
        `The backup archive contains the entry '${shown}' of type ${e.type}, which the directory provider does not restore.`,
        {
          errorId: 'UnsupportedArchiveEntry',
          category: 'InvalidData',
          targetObject: shown,
          recommendedAction: 'The archive was not made by the directory provider; restore a backup made by AzsBackup.',
        },
      );
    }
    const rel = relativeOf(raw);
    if (rel === '' && e.type !== 'Directory') return unsafeEntry(shown, 'would replace the destination folder itself');
    for (const a of ancestors(rel)) {
      if (this.symlinks.has(a))
        return unsafeEntry(shown, `would be written through the symbolic link '${readable(a)}' and could land outside the destination`);
    }
    if (this.symlinks.has(rel) && e.type !== 'SymbolicLink')
      return unsafeEntry(shown, `would replace the symbolic link '${readable(rel)}' and could write through it`);
    // A folder's times and mode are set once tar is done, and whatever was put inside it is
    // reached through its path: a link in its place would lead both outside.
    if ((e.type === 'SymbolicLink' || e.type === 'Link') && this.folders.has(rel))
      return unsafeEntry(shown, `would replace the folder '${readable(rel)}' by a link`);
    if (e.type === 'Link') {
      const target = e.rawLinkpath ?? '';
      if (target === '' || target.startsWith('/')) return unsafeEntry(shown, `is a hard link to an absolute path '${readable(target)}'`);
      if (target.split('/').includes('..')) return unsafeEntry(shown, `is a hard link to '${readable(target)}', which contains '..'`);
      const t = relativeOf(target);
      for (const a of ancestors(t)) {
        if (this.symlinks.has(a)) return unsafeEntry(shown, `is a hard link through the symbolic link '${readable(a)}'`);
      }
      // A hard link to a symbolic link is one more name of that link (cp -al and rsync
      // --link-dest snapshots have them), and is guarded as one.
      if (this.symlinks.has(t)) this.symlinks.add(rel);
    }
    for (const a of ancestors(rel)) this.folders.add(a);
    if (e.type === 'Directory') this.folders.add(rel);
    if (e.type === 'SymbolicLink') {
      // Its target is kept verbatim (configuration folders hold absolute links, e.g. to /etc/ssl);
      // what matters is that nothing is written through it afterwards, which the checks above ensure.
      this.symlinks.add(rel);
      this.links.push({ rel, mtime: e.mtime, mtimeNs: e.mtimeNs, atime: e.atime, uid: e.uid, gid: e.gid });
    } else if (e.type === 'Directory') {
      this.dirs.push({ rel, mode: e.mode, mtime: e.mtime, mtimeNs: e.mtimeNs, atime: e.atime, uid: e.uid, gid: e.gid });
    }
    return undefined;
  }
}

/**
 * A folder that was written to while it was read: the archive would hold a file no one ever saw
 * whole, so the role fails, and the engine tries it again since the writer is usually done soon.
 */
function sourceChanged(root: string, role: string, e: SourceChangedError): AzsError {
  return new AzsError(
    `Files of the folder '${root}' (role '${role}') changed while they were read, so the copy would not be consistent: ./${e.path}: ${e.reason}.`,
    {
      errorId: 'DirectorySourceChanged',
      category: 'ResourceBusy',
      exitCode: ExitCode.Failure,
      targetObject: root,
      retryable: true,
      cause: e,
      recommendedAction:
        'Stop or pause what writes to the folder during the backup, or back up live data with a provider that takes a consistent copy ' +
        '(sqlite, postgres, or a command that snapshots it), then run the backup again.',
    },
  );
}

/** What stopped the archive of `root`, as the role's error. */
function exportFailure(root: string, role: string, e: unknown): AzsError {
  if (isAzsError(e)) return e;
  if (e instanceof SourceChangedError) return sourceChanged(root, role, e);
  if (e instanceof SourceAttributesTooLarge) {
    const file = path.join(root, e.path);
    return new AzsError(
      `'${file}' carries ${e.bytes} bytes of extended attributes, more than the ${e.limit} an archive entry holds for a restore to read; role '${role}' was not backed up.`,
      {
        errorId: 'DirectoryAttributesTooLarge',
        category: 'InvalidData',
        exitCode: ExitCode.Failure,
        targetObject: file,
        recommendedAction:
          "Remove the attributes the file does not need (getfattr -d -m - shows them, setfattr -x removes one), or move it out of the role's folder, then run the backup again.",
      },
    );
  }
  return new AzsError(`Reading the folder '${root}' (role '${role}') failed: ${(e as Error)?.message ?? String(e)}`, {
    errorId: 'DirectoryExportFailed',
    category: 'ReadError',
    exitCode: ExitCode.Failure,
    targetObject: e instanceof SourceReadError ? path.join(root, e.path) : root,
    cause: e,
    recommendedAction: tooManyOpenFiles(e)
      ? // The walk holds each folder above the one it reads open: a tree needs about one file a level.
        "Raise the limit on open files of the account or service that runs AzsBackup (ulimit -n, systemd's LimitNOFILE=) above the depth of the folder tree, then run the backup again."
      : 'Fix the cause named in the message (permissions, a disk error) and run the backup again.',
  });
}

function tooManyOpenFiles(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code ?? ((e as Error)?.cause as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EMFILE' || code === 'ENFILE';
}

/**
 * The archive of `root`, failing with the role's errors; cancelling `signal` stops it. The stream
 * takes its chunks back (recycle) like a program's output did.
 */
function exportFolder(root: string, role: string, signal: AbortSignal | undefined): Readable {
  const tar = directoryTar(root);
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  recycleThrough(out, tar);
  const onAbort = (): void => void tar.destroy(cancelledArchive(root, role));
  if (signal?.aborted) queueMicrotask(onAbort);
  else signal?.addEventListener('abort', onAbort, { once: true });
  tar.on('error', (e) => out.destroy(exportFailure(root, role, e)));
  tar.on('close', () => signal?.removeEventListener('abort', onAbort));
  // Whoever stops reading stops the walk, and the files it had open are closed.
  out.on('close', () => tar.destroy());
  tar.pipe(out);
  return out;
}

/** The archive's members as the walk yields them; cancelling `signal` stops the walk at the next member. */
async function* membersOf(root: string, role: string, signal: AbortSignal | undefined, pool: SlabPool): AsyncGenerator<ArchiveMember> {
  for (const entry of walkTree(root, { pool })) {
    if (signal?.aborted) throw cancelledArchive(root, role);
    yield entry;
  }
}

function cancelledArchive(root: string, role: string): AzsError {
  return new AzsError(`The archive of the folder '${root}' (role '${role}') was stopped because the job was cancelled`, {
    errorId: 'DirectoryExportCancelled',
    category: 'OperationStopped',
    targetObject: root,
  });
}

function wrapFsError(e: unknown, errorId: string, what: string, target: string): AzsError {
  return providerFsError(e, {
    message: what,
    errorId,
    target,
    recommendedAction: 'Fix the cause named in the message and run the restore again.',
  });
}

/** The first reason the extraction must stop; refusing aborts `stop`, which ends GNU tar. */
class Refusal {
  reason: AzsError | undefined;
  readonly stop = new AbortController();

  refuse(e: AzsError): void {
    this.reason ??= e;
    this.stop.abort();
  }
}

/** What goes to GNU tar, and how its pipe tells that a piece was taken (for recycling). */
interface GuardedStream {
  toTar: Transform;
  written: ((piece: Buffer) => void) | undefined;
}

/**
 * `data` passed on chunk by chunk to GNU tar, every header shown to the guard first: the bytes of a
 * refused header never reach GNU tar (the chunk fails instead of passing on). FIFOs are checked too
 * and noted in `fifos`; a failure of `data` itself refuses the restore too. With `direct`, the
 * large plain files are taken out of the stream and written here instead (direct-files.ts).
 */
function guardedTarStream(
  data: Readable,
  staging: string,
  guard: EntryGuard,
  fifos: string[],
  refusal: Refusal,
  direct: DirectFiles | undefined,
): GuardedStream {
  const routed = direct ? directRoute(direct, recyclerOf(data), refusal, staging) : undefined;
  const scanner = new TarScanner(
    (entry) => {
      // A FIFO carries no data and its owner makes it again: GNU tar creates it, and it is removed
      // below, by its path: so that path is held to the guard like any other.
      const problem = guard.check(entry);
      if (problem) throw problem;
      if (entry.type === 'FIFO') fifos.push(entry.rawPath);
      routed?.router.entry(entry);
    },
    routed ? (piece, part) => routed.router.piece(piece, part) : undefined,
  );
  const scanned = (scan: () => void): Error | undefined => {
    try {
      scan();
      return undefined;
    } catch (e) {
      refusal.refuse(
        e instanceof TarFormatError
          ? new AzsError(`The role data is not a valid tar archive (${e.message}); nothing was changed.`, {
              errorId: 'DirectoryArchiveInvalid',
              category: 'InvalidData',
              cause: e,
              recommendedAction: 'Check the backup with Test-InfrastructureBackup and restore another one if it is damaged.',
            })
          : isAzsError(e)
            ? e
            : wrapFsError(e, 'DirectoryImportFailed', 'Reading the role data failed', staging),
      );
      return refusal.reason;
    }
  };
  const toTar = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _encoding, done) {
      if (!routed) {
        const err = scanned(() => scanner.write(chunk));
        return done(err, err ? undefined : chunk);
      }
      routed.router.begin(chunk);
      const err = scanned(() => scanner.write(chunk));
      if (err) return done(err);
      routed.run(routed.router.take(), (piece) => this.push(piece)).then(() => done(), done);
    },
    flush(done) {
      const err = scanned(() => scanner.end());
      if (err || !routed) return done(err);
      routed
        .run(routed.router.finish(), (piece) => this.push(piece))
        .then(() => routed.settled())
        .then(() => done(), done);
    },
  });
  const onDataError = (e: unknown): void => {
    const error = isAzsError(e)
      ? e
      : new AzsError(`The role data stream failed during the restore: ${(e as Error).message}; nothing was changed.`, {
          errorId: 'DirectoryImportInputFailed',
          category: 'ReadError',
          cause: e,
          recommendedAction: 'Check the share and the backup with Test-InfrastructureBackup, then restore again.',
        });
    refusal.refuse(error);
    toTar.destroy(error);
  };
  data.on('error', onDataError);
  const early = earlyFailure(data);
  if (early) onDataError(early);
  data.pipe(toTar);
  return { toTar, written: routed ? (piece) => routed.router.done(piece) : recyclerOf(data) };
}

/** Whether the entry's name is UTF-8 text: its bytes are what its UTF-8 reading writes. */
function isUtf8(e: TarEntry): boolean {
  return Buffer.from(e.path, 'utf8').equals(Buffer.from(e.rawPath, 'latin1'));
}

/** A regular file GNU tar would write plainly, large enough to be worth writing past the page cache. */
function plainLargeFile(e: TarEntry): boolean {
  return (e.type === 'File' || e.type === 'OldFile' || e.type === 'ContiguousFile') && e.size >= DIRECT_MIN_BYTES && !e.moreRecords;
}

/**
 * The steps of an ArchiveRouter carried out: GNU tar's pieces pushed on, the files taken away
 * created (before anything after them reaches GNU tar, whose hard links may name them), filled and
 * finished. A file is finished while the stream goes on; settled() waits for them all.
 */
function directRoute(direct: DirectFiles, recycle: ((chunk: Buffer) => void) | undefined, refusal: Refusal, staging: string) {
  // A name taken away must be the only entry of that name: GNU tar, extracting the other one
  // later or earlier, would silently decide which of the two stays.
  const seen = new Set<string>();
  const taken = new Set<string>();
  const router = new ArchiveRouter((entry) => {
    const rel = relativeOf(entry.rawPath);
    if (taken.has(rel)) throw unsafeEntry(entry.path, 'appears twice in the archive');
    // The addon takes names as UTF-8 text: one that is not (its bytes would read with U+FFFD, and
    // be made under another name) is left to GNU tar, which makes it from its bytes.
    const takes = plainLargeFile(entry) && isUtf8(entry) && !seen.has(rel);
    seen.add(rel);
    if (takes) taken.add(rel);
    return takes;
  }, recycle);
  let file: DirectFile | undefined;
  const finishing: Promise<void>[] = [];
  const failed = (e: unknown): AzsError => {
    refusal.refuse(isAzsError(e) ? e : wrapFsError(e, 'DirectoryImportFailed', 'Writing a restored file failed', staging));
    return refusal.reason!;
  };
  const run = async (steps: RouteStep[], push: (piece: Buffer) => void): Promise<void> => {
    try {
      for (const step of steps) {
        // Refused meanwhile (a cancel, GNU tar gone, a file that failed): the files are being
        // abandoned, so no step of this chunk goes on with them.
        if (refusal.reason) throw refusal.reason;
        if (step.kind === 'tar') push(step.piece);
        // Only names that are UTF-8 are taken (isUtf8), so the name's text is its bytes.
        else if (step.kind === 'open') file = await direct.create({ ...step.entry, rel: relativeOf(step.entry.path) });
        else if (step.kind === 'data') {
          await file!.write(step.piece);
          router.done(step.piece);
        } else {
          finishing.push(file!.finish().catch((e: unknown) => void failed(e)));
          file = undefined;
        }
      }
    } catch (e) {
      throw failed(e);
    }
  };
  const settled = async (): Promise<void> => {
    await Promise.all(finishing);
    if (refusal.reason) throw refusal.reason;
  };
  return { router, run, settled };
}

/** GNU tar's failure as the restore reports it; a full disk becomes the file-system error it is. */
function extractFailure(failure: unknown, staging: string): unknown {
  // A full disk shows in GNU tar as ENOSPC, or as a short write ("Wrote only 10240 of 131072
  // bytes"), which the kernel gives when the space runs out in the middle of one write.
  if (isAzsError(failure) && /No space left on device|Disk quota exceeded|Wrote only \d+ of \d+ bytes/.test(failure.message)) {
    return wrapFsError(
      Object.assign(new Error(failure.message), { code: 'ENOSPC' }),
      'DirectoryImportFailed',
      'Extracting the role data failed',
      staging,
    );
  }
  return failure;
}

/** The path of `rel` (a name's bytes as latin1, TarEntry.rawPath) in `staging`, as bytes. */
function inStaging(staging: string, rel: string): Buffer {
  return rel === '' ? Buffer.from(staging) : Buffer.concat([Buffer.from(`${staging}/`), Buffer.from(rel, 'latin1')]);
}

/**
 * Times, modes and owners exactly as archived, whatever the extracting tar's version does for
 * symbolic links and late-written directories: deepest first, links before folders. The FIFOs GNU
 * tar made are removed first.
 */
async function restoreMetadata(staging: string, guard: EntryGuard, fifos: string[], asRoot: boolean): Promise<void> {
  for (const f of fifos) await fs.rm(inStaging(staging, relativeOf(f)), { force: true });
  const byDepth = [...guard.dirs].sort((a, b) => b.rel.split('/').length - a.rel.split('/').length || b.rel.length - a.rel.length);
  // GNU tar has set every time to the nanosecond; Node sets them to the microsecond, below the
  // time given. So a time is set again only where it is not the archive's (a folder that held a FIFO).
  const timeIsRight = async (p: Buffer, ns: bigint | undefined) =>
    ns !== undefined &&
    (await fs.lstat(p, { bigint: true }).then(
      (st) => st.mtimeNs === ns,
      () => false,
    ));
  for (const l of guard.links) {
    const p = inStaging(staging, l.rel);
    if (asRoot && typeof l.uid === 'number' && typeof l.gid === 'number') await fs.lchown(p, l.uid, l.gid);
    if (l.mtime && !(await timeIsRight(p, l.mtimeNs))) await fs.lutimes(p, l.atime ?? l.mtime, l.mtime).catch(() => undefined);
  }
  // The staging root keeps its owner-only mode until it goes into place (giveRootItsAttributes).
  for (const d of byDepth) if (d.rel !== '') await restoreFolder(inStaging(staging, d.rel), d, asRoot);
}

type FolderEntry = EntryGuard['dirs'][number];

/** A folder's owner, mode and times as archived, through a handle on the folder itself. */
async function restoreFolder(p: Buffer, d: FolderEntry, asRoot: boolean): Promise<void> {
  // Through a handle on the folder itself, never through a link in its place (the guard refuses
  // such archives; this holds even if it missed one).
  const folder = await fs
    .open(p, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW)
    .catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'ELOOP' || e.code === 'ENOTDIR'
        ? unsafeEntry(readable(d.rel), 'is a folder in the archive but something else once extracted')
        : e;
    });
  try {
    if (asRoot && typeof d.uid === 'number' && typeof d.gid === 'number') await folder.chown(d.uid, d.gid);
    if (typeof d.mode === 'number') await folder.chmod(d.mode & 0o7777);
    if (d.mtime && (await folder.stat({ bigint: true })).mtimeNs !== d.mtimeNs) await folder.utimes(d.atime ?? d.mtime, d.mtime);
  } finally {
    await folder.close();
  }
}

/**
 * Extracts `data` into the empty folder `staging`; rejects on the first unsafe entry or error.
 * Resolves to what gives the staging root its archived attributes, right before it goes into place.
 *
 * GNU tar extracts, in its own process (node-tar extracting in-process halved restore speed), and
 * every header reaches the guard (tar-scanner.ts) before its bytes are passed on to GNU tar. GNU
 * tar on its own already refuses to write outside its folder (it strips '/', skips '..' and defers
 * symlinks), so nothing can escape `staging` even then; the guard makes any such entry refuse the
 * whole restore, and the caller then discards `staging` without touching the destination.
 */
async function extractStrict(data: Readable, staging: string, { signal }: ProviderContext): Promise<() => Promise<void>> {
  const guard = new EntryGuard();
  const refusal = new Refusal();
  const onAbort = (): void =>
    refusal.refuse(
      new AzsError('The restore was cancelled; the folder was left as it was.', {
        errorId: 'DirectoryImportCancelled',
        category: 'OperationStopped',
      }),
    );
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });

  const fifos: string[] = [];
  const asRoot = process.getuid?.() === 0;
  const direct = await DirectFiles.into(staging, asRoot).catch(() => undefined);
  const { toTar, written } = guardedTarStream(data, staging, guard, fifos, refusal, direct);
  const failure = await importIntoProgram(
    {
      argv: [
        'tar',
        '-C',
        staging,
        '-x',
        '-p',
        '--blocking-factor=256',
        '--read-full-records',
        '-f',
        '-',
        '--numeric-owner',
        // The staging root (and a folder the direct writer made first) is left as it is: the root
        // stays owner-only until it goes into place, and every folder gets its archived mode,
        // owner and times from restoreMetadata.
        '--no-overwrite-dir',
        ...(asRoot ? ['--same-owner'] : ['--no-same-owner']),
        // Every attribute the archive carries (POSIX ACLs are system.posix_acl_*): GNU tar's default
        // sets user.* alone. One it cannot set fails the restore, naming it.
        '--xattrs',
        '--xattrs-include=*',
      ],
      errorPrefix: 'DirectoryImport',
      label: `tar extracting into '${staging}'`,
      signal: refusal.stop.signal,
      // The guard keeps copies of the header bytes it gathers, never the chunks themselves.
      written,
    },
    toTar,
  ).catch((e: unknown) => e);
  signal?.removeEventListener('abort', onAbort);
  if (refusal.reason || failure !== undefined) await direct?.abandon();
  if (refusal.reason) throw refusal.reason;
  if (failure !== undefined) throw extractFailure(failure, staging);
  // The data on disk before the folders get their modes: the staging root stays owner-only (0700)
  // through the flush, and what restoreMetadata changes after it is metadata alone, which the
  // file system's journal commits before the rename that puts the folder in place.
  await flushToDisk(staging);
  await restoreMetadata(staging, guard, fifos, asRoot);
  const root = guard.dirs.find((d) => d.rel === '');
  return async () => {
    if (root) await restoreFolder(Buffer.from(staging), root, asRoot);
  };
}

/**
 * statfs(2) magic numbers of local Linux file systems with nanosecond timestamps taken from this
 * machine's clock: ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ZFS, bcachefs. Network file systems (NFS,
 * SMB, FUSE mounts) are left out: their server's clock sets the ctime.
 */
const LOCAL_NANOSECOND_FILE_SYSTEMS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0xf2f52010, 0x2fc12fc1, 0xca451a4e]);

/** The device of `root` when it is on one of those file systems, else undefined. */
async function localDeviceOf(root: string): Promise<bigint | undefined> {
  try {
    const [fsInfo, st] = await Promise.all([fs.statfs(root), fs.lstat(root, { bigint: true })]);
    return LOCAL_NANOSECOND_FILE_SYSTEMS.has(fsInfo.type) ? st.dev : undefined;
  } catch {
    return undefined;
  }
}

/**
 * File systems kept in memory, which never write a page back: after the first write through a
 * shared mapping, no later one moves a file's times, however long after, so a files cache can
 * never tell such a file unchanged (files-cache-mmap.test.ts).
 */
const NEVER_WRITTEN_BACK = new Set(['tmpfs', 'ramfs', 'hugetlbfs']);

/**
 * The devices (st_dev) of the file systems mounted here that never write pages back, from
 * /proc/self/mountinfo ("36 35 0:42 / /dev/shm rw - tmpfs tmpfs rw"), and `root`'s own when it
 * lies on one (statfs: also where /proc is not mounted).
 */
async function devicesNeverWrittenBack(root: string): Promise<Set<bigint>> {
  const devices = new Set((await mountTable())?.filter((m) => NEVER_WRITTEN_BACK.has(m.type)).map((m) => m.dev));
  try {
    const [fsInfo, st] = await Promise.all([fs.statfs(root), fs.lstat(root, { bigint: true })]);
    if ([0x01021994, 0x858458f6, 0x958458f6].includes(fsInfo.type)) devices.add(st.dev);
  } catch {
    // The walk reports a root it cannot stat.
  }
  return devices;
}

/**
 * Refuses a destination that holds a mount point: the swap would carry the mounted file system
 * aside with the old contents, where its removal fails and its next mount hides the restored files
 * again.
 */
function mountInTheWay(dest: string, mounts: string[]): AzsError {
  const more = mounts.length > 1 ? ` and ${mounts.length - 1} more` : '';
  return new AzsError(
    `The restore destination '${dest}' holds the mount point '${mounts[0]}'${more}: a restore replaces the folder's contents whole, and would carry the mounted file system aside with the old ones. Nothing was changed.`,
    {
      errorId: 'DirectoryDestinationHoldsMount',
      category: 'InvalidOperation',
      exitCode: ExitCode.Failure,
      targetObject: mounts[0],
      recommendedAction: `Unmount what is mounted inside the folder (umount '${mounts[0]}') and restore again, then move the restored files of that folder onto its file system and mount it back; or restore into another folder (register the role again with -Force and another -Path, restore, stop the service and move the files into place, then register the role back with its own -Path).`,
    },
  );
}

export class DirectoryProvider implements Provider {
  readonly streamsIntoDestination = false;

  constructor(private readonly role: RoleDefinition & { path: string }) {}

  describe(): ProviderDescription {
    return { provider: 'directory', source: this.role.path };
  }

  async export(ctx: ProviderContext = {}): Promise<Readable> {
    return exportFolder(await this.exportRoot(), this.role.name, ctx.signal);
  }

  /** The same archive as export(), member by member (tar-writer.ts), for the backup's files cache. */
  async exportMembers(ctx: ProviderContext = {}): Promise<ArchiveExport> {
    const root = await this.exportRoot();
    const pool = tarPool();
    const [localDevice, neverWrittenBack] = await Promise.all([localDeviceOf(root), devicesNeverWrittenBack(root)]);
    return {
      members: membersOf(root, this.role.name, ctx.signal, pool),
      trailer: endOfArchive(),
      explain: (e) => exportFailure(root, this.role.name, e),
      recycle: (piece) => pool.recycle(piece),
      ...(localDevice === undefined ? {} : { localDevice }),
      neverWrittenBack,
    };
  }

  /** The folder to archive: the registered one, resolved, checked to be a folder. */
  private async exportRoot(): Promise<string> {
    let root = this.role.path;
    let st: Stats;
    // A restore killed mid-swap may have left the folder set aside: put right first.
    await recoverSwaps(await resolveDestination(root)).catch(() => undefined);
    try {
      st = await fs.stat(root);
      // Archive the folder a registered symbolic link points at, not the link itself.
      root = await fs.realpath(root);
    } catch (e) {
      throw new AzsError(`The folder '${root}' of role '${this.role.name}' cannot be read: ${(e as Error).message}`, {
        errorId: 'DirectoryNotFound',
        category: 'ObjectNotFound',
        exitCode: ExitCode.Failure,
        targetObject: root,
        cause: e,
        recommendedAction: 'Check that the folder exists on this machine, or register the role again with the right -Path.',
      });
    }
    if (!st.isDirectory()) {
      throw new AzsError(`The path '${root}' of role '${this.role.name}' is not a folder.`, {
        errorId: 'DirectoryNotAFolder',
        category: 'InvalidArgument',
        exitCode: ExitCode.Failure,
        targetObject: root,
        recommendedAction: 'Use the sqlite provider for a database file, or register the folder that holds the data.',
      });
    }
    // The archive is written here (tar-writer.ts), entry by entry, as GNU tar --format=posix
    // --numeric-owner -C root -cf - . wrote it, names sorted; so that a files cache can skip what it
    // has already stored. The pax format keeps sub-second times and long names, and the strictly
    // checked restore below reads its headers with tar-scanner.ts. Sockets are left out; FIFOs
    // carry no data and are skipped on restore.
    return root;
  }

  async import(data: Readable, ctx: ProviderContext = {}): Promise<void> {
    // A registered path that is a symbolic link (e.g. /etc/pki -> /data/pki) stays a link:
    // the real folder is the one replaced.
    const dest = await resolveDestination(ctx.destination ?? this.role.path);
    await makeFolders(path.dirname(dest)).catch((e: unknown) => {
      data.resume();
      throw wrapFsError(e, 'DirectoryImportFailed', `Making the folder '${path.dirname(dest)}' to restore into failed`, dest);
    });
    await recoverSwaps(dest);
    const st = await fs.stat(dest).catch(() => undefined);
    if (st && !st.isDirectory()) {
      data.resume();
      throw new AzsError(`The restore destination '${dest}' exists and is not a folder; it was left as it was.`, {
        errorId: 'DirectoryDestinationNotAFolder',
        category: 'InvalidArgument',
        exitCode: ExitCode.Failure,
        targetObject: dest,
        recommendedAction: 'Move the file away or restore to another destination.',
      });
    }
    const mounts = st ? await mountsAtOrBelow(dest) : [];
    // The root of a mounted file system stays where it is: its contents are swapped instead.
    const isMountPoint = mounts[0] === dest;
    const below = isMountPoint ? mounts.slice(1) : mounts;
    if (below.length > 0) {
      data.resume();
      throw mountInTheWay(dest, below);
    }
    let staging: Staging | undefined;
    try {
      staging = isMountPoint ? await Staging.beginWithin(dest) : await Staging.begin(dest);
      const giveRootItsAttributes = await extractStrict(data, staging.path, ctx);
      await ctx.beforeCommit?.();
      // Owner-only until now: a restore killed before this leaves nothing readable beside the folder.
      await giveRootItsAttributes();
      const users = st && ctx.warn ? processesUsing(dest, true) : [];
      await (isMountPoint ? staging.swapContentsIn() : staging.swapFolderIn());
      if (users.length > 0) ctx.warn?.(stillInUse(this.role.name, dest, users));
    } catch (e) {
      await staging?.discard().catch(() => undefined);
      throw wrapFsError(e, 'DirectoryImportFailed', `Restoring the folder '${dest}' failed; it was left as it was`, dest);
    }
  }
}
