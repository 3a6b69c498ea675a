import type { Readable, Writable } from 'node:stream';
import { findProgram } from '../native/posix-spawn.js';
import { spawnProgram, type SpawnedProgram } from '../process/spawn.js';

/**
 * One run of Debian's smbclient, started the way providers start tar (src/process/spawn.ts:
 * posix_spawn and 1 MiB pipes where our addon is built), with its verdict gathered for smb.ts.
 * A file it streams out arrives in recycled memory (see src/memory/pooled-reader.ts).
 */

export interface SmbClientOptions {
  /** The whole environment: smbclient inherits nothing, the host may hold secrets in its own. */
  env: Record<string, string>;
  /** Give it a stdin to read a file from; otherwise /dev/null. */
  stdin: boolean;
  /** Its stdout carries a file: hand the stream out instead of collecting it as text. */
  streamStdout: boolean;
  /** SIGTERM after this long (SIGKILL 2 s later); undefined means no limit. */
  timeoutMs?: number;
  /**
   * No file it writes on this machine grows past this many bytes: the kernel stops it there
   * (RLIMIT_FSIZE, set by util-linux's prlimit, which then runs smbclient), with SIGXFSZ.
   * Ignored where prlimit is not installed: see `localFileLimitEnforced`.
   */
  maxLocalFileBytes?: number;
  /**
   * Watch its stdout (collected as text) for the first line this accepts: `lineShown` says whether
   * one showed. smbclient then runs under coreutils' `stdbuf -oL`, so that its lines arrive as it
   * prints them rather than at exit (a pipe is block-buffered), where stdbuf is on PATH: see
   * `stdoutLinesPrompt`. Not for a run whose stdout streams a file.
   */
  watchLine?: (line: string) => boolean;
}

export interface SmbClientResult {
  /** What it printed, '' when stdout streamed a file. */
  stdout: string;
  stderr: string;
  /** It exited non-zero, was killed, or could not be started. */
  failed: boolean;
  /** A signal ended it (our kill, a time-out, the local file size limit). */
  isTerminated: boolean;
  /** That signal's name. */
  signal?: NodeJS.Signals;
  timedOut: boolean;
  /** smbclient is not installed (or not executable) on this machine. */
  missing: boolean;
  /** It could not be started because no more processes may be (EAGAIN: ulimit -u, pids.max). */
  processLimit?: boolean;
  /** One line on how it ended, for messages: "exited with code 1", "was killed by SIGKILL". */
  shortMessage: string;
}

export interface SmbClient {
  stdin: Writable | null;
  stdout: Readable | null;
  kill(signal: NodeJS.Signals): void;
  /** True once a stdout line `watchLine` accepts has shown; false once it ended without one. */
  lineShown: Promise<boolean>;
  /** Settles once it has ended and its output has been read; never rejects. */
  result: Promise<SmbClientResult>;
}

const FORCE_KILL_AFTER_MS = 2000;

export function startSmbClient(args: readonly string[], opts: SmbClientOptions): SmbClient {
  let program: SpawnedProgram;
  const limited = opts.maxLocalFileBytes !== undefined && localFileLimitEnforced(opts.env.PATH);
  const lineBuffered = opts.watchLine !== undefined && !opts.streamStdout && stdoutLinesPrompt(opts.env.PATH);
  try {
    // prlimit and stdbuf find smbclient themselves; asking first keeps "smbclient is not installed" its own error.
    if (limited || lineBuffered) findProgram('smbclient', opts.env.PATH);
    let command = ['smbclient', ...args];
    if (lineBuffered) command = ['stdbuf', '-oL', ...command];
    if (limited) command = ['prlimit', `--fsize=${opts.maxLocalFileBytes}`, '--core=0', '--', ...command];
    const [file, ...argv] = command as [string, ...string[]];
    program = spawnProgram(file, argv, {
      env: opts.env,
      stdin: opts.stdin,
      stdout: true,
      stderr: true,
      // A session of its own, as a role's programs have: Ctrl-C at a terminal signals the whole
      // foreground group, and an smbclient killed by it behind our back reads as the share
      // failing (a stopped backup raised "the share cannot be reached"). We stop it ourselves.
      newSession: true,
      pooledStdout: opts.streamStdout,
    });
  } catch (e) {
    const { code, message } = e as NodeJS.ErrnoException;
    const missing = code === 'ENOENT' || code === 'EACCES';
    const result = Promise.resolve(notStarted(missing, message, code));
    return { stdin: null, stdout: null, kill() {}, lineShown: Promise.resolve(false), result };
  }
  let ended = false;
  const kill = (signal: NodeJS.Signals): void => {
    if (ended || program.pid === undefined) return;
    try {
      process.kill(program.pid, signal);
    } catch {
      // Already gone.
    }
  };
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  let forceTimer: NodeJS.Timeout | undefined;
  if (opts.timeoutMs !== undefined) {
    timer = setTimeout(() => {
      timedOut = true;
      kill('SIGTERM');
      forceTimer = setTimeout(() => kill('SIGKILL'), FORCE_KILL_AFTER_MS);
    }, opts.timeoutMs);
  }
  let lineShown!: (shown: boolean) => void;
  const shown = new Promise<boolean>((resolve) => (lineShown = resolve));
  const { watchLine } = opts;
  const watch =
    watchLine &&
    ((line: string): boolean => {
      if (!watchLine(line)) return false;
      lineShown(true);
      return true;
    });
  const stdoutText = opts.streamStdout ? '' : text(program.stdout, watch);
  const result = Promise.all([program.ended, stdoutText, text(program.stderr)]).then(([end, stdout, stderr]): SmbClientResult => {
    ended = true;
    lineShown(false); // no-op once a line showed
    clearTimeout(timer);
    clearTimeout(forceTimer);
    if (end.error) return { ...notStarted(end.error.code === 'ENOENT', end.error.message, end.error.code), stdout, stderr };
    const isTerminated = end.signal !== undefined;
    return {
      stdout,
      stderr,
      failed: isTerminated || end.exitCode !== 0,
      isTerminated,
      signal: end.signal,
      timedOut,
      missing: false,
      shortMessage: isTerminated ? `was killed by ${end.signal}` : `exited with code ${end.exitCode}`,
    };
  });
  return { stdin: program.stdin, stdout: program.stdout, kill, lineShown: shown, result };
}

/** Programs looked for, by name and PATH: whether each was found. */
const programsFound = new Map<string, boolean>();

function onPath(program: string, searchPath: string | undefined): boolean {
  const key = `${program}\0${searchPath ?? ''}`;
  let found = programsFound.get(key);
  if (found === undefined) {
    try {
      findProgram(program, searchPath);
      found = true;
    } catch {
      found = false;
    }
    programsFound.set(key, found);
  }
  return found;
}

/**
 * Whether `watchLine` sees smbclient's lines as it prints them (coreutils' stdbuf is on this PATH),
 * rather than all at once when it exits.
 */
export function stdoutLinesPrompt(searchPath: string | undefined): boolean {
  return onPath('stdbuf', searchPath);
}

/** Whether `maxLocalFileBytes` is kept on this machine (util-linux's prlimit is on PATH). */
export function localFileLimitEnforced(searchPath: string | undefined): boolean {
  return onPath('prlimit', searchPath);
}

function notStarted(missing: boolean, message: string, code?: string): SmbClientResult {
  return {
    stdout: '',
    stderr: '',
    failed: true,
    isTerminated: false,
    timedOut: false,
    missing,
    processLimit: code === 'EAGAIN',
    shortMessage: `could not be started (${message})`,
  };
}

/** All of `stream` as text; `watch` sees its lines as they arrive, until it returns true. */
async function text(stream: Readable | null, watch?: (line: string) => boolean): Promise<string> {
  if (!stream) return '';
  let out = '';
  let scanned = 0;
  let watching = watch !== undefined;
  stream.setEncoding('utf8');
  for await (const piece of stream) {
    out += piece as string;
    for (let end = out.indexOf('\n', scanned); watching && end >= 0; end = out.indexOf('\n', scanned)) {
      watching = watch?.(out.slice(scanned, end)) !== true;
      scanned = end + 1;
    }
  }
  return out;
}
