import { closeSync, constants, fstatSync, openSync, readSync, readlinkSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { AzsError, ExitCode, type ErrorCategory } from '../errors.js';

/**
 * Reading a file that someone else chose: an operator's certificate or key, a configuration or
 * state file under AZSBACKUP_HOME, a BackupInfo.xml on a share. Every such read is bounded: at most
 * maxBytes + 1 bytes are read (the extra byte tells "too large" from "exactly the limit"), and only
 * a regular file is read at all. A folder, a FIFO (whose open would wait for a writer), a device
 * (/dev/zero never ends) or a kernel interface under /proc or /sys is refused before a byte is read.
 * Every failure is an AzsError that names the file and says what to do.
 */

export interface ReadLimit {
  /** What the file is, for messages: "certificate file", "configuration file". */
  what: string;
  maxBytes: number;
  /** What the operator should do about a file that is missing, too large or not a file. */
  remediation: string;
  /** Exit code of the refusal; default 2 (the operator named a wrong file). */
  exitCode?: ExitCode;
}

/** The ErrorIds a bounded read fails with. */
export const ReadFailure = {
  NotFound: 'FileNotFound',
  TooLarge: 'FileTooLarge',
  NotAFile: 'NotARegularFile',
  Unreadable: 'FileUnreadable',
} as const;

const PIECE = 64 * 1024;
// Not /dev: its devices are refused by their kind, and /dev/shm is where some keep secrets in RAM.
const KERNEL_TREES = ['/proc/', '/sys/'];

function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

function failure(
  file: string,
  limit: ReadLimit,
  errorId: string,
  category: ErrorCategory,
  message: string,
  cause?: unknown,
  exitCode?: ExitCode,
): AzsError {
  return new AzsError(message, {
    errorId,
    category,
    exitCode: exitCode ?? limit.exitCode ?? ExitCode.Usage,
    targetObject: file,
    recommendedAction: limit.remediation,
    cause,
  });
}

/** An error a file operation threw, as the AzsError it means for a file the operator named. */
export function fileError(e: unknown, file: string, limit: Pick<ReadLimit, 'what' | 'remediation' | 'exitCode'>, doing = 'read'): AzsError {
  if (e instanceof AzsError) return e;
  const code = errnoOf(e);
  const l = { ...limit, maxBytes: 0 };
  switch (code) {
    case 'ENOENT':
      return failure(
        file,
        l,
        ReadFailure.NotFound,
        'ObjectNotFound',
        `The ${limit.what} '${file}' does not exist${doing === 'read' ? '' : ', or its folder does not'}.`,
        e,
      );
    case 'ENOTDIR':
      return failure(
        file,
        l,
        ReadFailure.NotFound,
        'ObjectNotFound',
        `The ${limit.what} '${file}' cannot be reached: a part of its path is a file, not a folder.`,
        e,
      );
    case 'EISDIR':
      return failure(file, l, ReadFailure.NotAFile, 'InvalidArgument', `The ${limit.what} '${file}' is a folder, not a file.`, e);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return failure(
        file,
        l,
        doing === 'read' ? ReadFailure.Unreadable : 'FileNotWritable',
        'PermissionDenied',
        `This account may not ${doing} the ${limit.what} '${file}' (${code}).`,
        e,
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return failure(
        file,
        l,
        'InsufficientSpace',
        'QuotaExceeded',
        `There is no room to ${doing} the ${limit.what} '${file}' (${code}).`,
        e,
        ExitCode.Capacity,
      );
    default:
      return failure(
        file,
        l,
        doing === 'read' ? ReadFailure.Unreadable : 'FileNotWritable',
        doing === 'read' ? 'ReadError' : 'WriteError',
        `The ${limit.what} '${file}' cannot be ${doing === 'read' ? 'read' : 'written'} (${code ?? (e as Error)?.message ?? String(e)}).`,
        e,
        limit.exitCode ?? ExitCode.Failure,
      );
  }
}

/** True when a bounded read failed because the file does not exist. */
export function isMissingFile(e: unknown): boolean {
  return e instanceof AzsError && e.errorId === ReadFailure.NotFound;
}

/** '/proc' or '/sys' when the absolute path lies in one of them: kernel interfaces, not stored files. */
export function kernelTreeOf(absolute: string): string | undefined {
  const p = resolve(absolute);
  return KERNEL_TREES.map((t) => t.slice(0, -1)).find((t) => p === t || p.startsWith(`${t}/`));
}

/** Where an open descriptor really lies (symbolic links followed), on Linux; else the path as given. */
function realPathOf(fd: number, file: string): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return resolve(file);
  }
}

/** Refuses (NotARegularFile) what `fd`, opened from `file`, is unless a regular stored file: for readers that stream a file whole. */
export function checkKind(st: Stats, fd: number, file: string, limit: ReadLimit): void {
  const kind = st.isDirectory()
    ? 'a folder'
    : st.isFIFO()
      ? 'a named pipe (FIFO)'
      : st.isCharacterDevice() || st.isBlockDevice()
        ? 'a device'
        : st.isSocket()
          ? 'a socket'
          : st.isFile()
            ? undefined
            : 'not a regular file';
  const real = realPathOf(fd, file);
  const kernel = kernelTreeOf(real);
  if (kind === undefined && kernel === undefined) return;
  const what = kind ?? `a kernel interface under ${kernel}, not a stored file`;
  throw failure(
    file,
    limit,
    ReadFailure.NotAFile,
    'InvalidArgument',
    `The ${limit.what} '${file}'${real !== resolve(file) ? ` (${real})` : ''} is ${what}; only a regular file is read.`,
  );
}

/** The refusal of a file over its limit, unread: for readers (a blob, a share) that know its size before reading. */
export function tooLarge(file: string, limit: ReadLimit, size: number | undefined): AzsError {
  return failure(
    file,
    limit,
    ReadFailure.TooLarge,
    'InvalidData',
    `The ${limit.what} '${file}' is ${size === undefined ? 'larger than' : `${size} bytes, over`} the limit of ${limit.maxBytes} bytes; it was not read.`,
  );
}

// O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused right after.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/**
 * The whole file, at most limit.maxBytes of it; see the top of this file. `noFollow`: a symbolic
 * link at the path fails with ELOOP (the fileError's cause) instead of being read through.
 */
export async function readFileBounded(file: string, limit: ReadLimit, opts: { noFollow?: boolean } = {}): Promise<Buffer> {
  let handle: FileHandle;
  try {
    handle = await open(file, opts.noFollow ? OPEN_FLAGS | constants.O_NOFOLLOW : OPEN_FLAGS);
  } catch (e) {
    throw fileError(e, file, limit);
  }
  try {
    const st = await handle.stat();
    checkKind(st, handle.fd, file, limit);
    if (st.size > limit.maxBytes) throw tooLarge(file, limit, st.size);
    const pieces: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(PIECE, limit.maxBytes + 1 - total);
      const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(want), 0, want, null);
      if (bytesRead === 0) break;
      pieces.push(buffer.subarray(0, bytesRead));
      total += bytesRead;
      if (total > limit.maxBytes) throw tooLarge(file, limit, undefined);
    }
    return Buffer.concat(pieces, total);
  } catch (e) {
    throw fileError(e, file, limit);
  } finally {
    await handle.close();
  }
}

/** readFileBounded for the few callers that must stay synchronous (configuration, locks). */
export function readFileBoundedSync(file: string, limit: ReadLimit): Buffer {
  let fd: number;
  try {
    fd = openSync(file, OPEN_FLAGS);
  } catch (e) {
    throw fileError(e, file, limit);
  }
  try {
    const st = fstatSync(fd);
    checkKind(st, fd, file, limit);
    if (st.size > limit.maxBytes) throw tooLarge(file, limit, st.size);
    let buffer = Buffer.allocUnsafe(Math.min(st.size, limit.maxBytes) + 1);
    let total = 0;
    for (;;) {
      if (total === buffer.length) {
        // It grew since fstat: read on, up to the limit.
        if (total > limit.maxBytes) throw tooLarge(file, limit, undefined);
        const bigger = Buffer.allocUnsafe(Math.min(total * 2 + PIECE, limit.maxBytes + 1));
        buffer.copy(bigger);
        buffer = bigger;
      }
      const n = readSync(fd, buffer, total, buffer.length - total, null);
      if (n === 0) break;
      total += n;
    }
    return buffer.subarray(0, total);
  } catch (e) {
    throw fileError(e, file, limit);
  } finally {
    closeSync(fd);
  }
}
