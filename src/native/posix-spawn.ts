import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { readPooled } from '../memory/pooled-reader.js';
import { loadAddon } from './addon.js';

/**
 * Starts a program without fork(): see posix-spawn.c for why it matters (the page faults fork()
 * leaves behind grow with the parent's memory). Linux and glibc only; everywhere
 * else, or when the addon was not compiled, `spawnWithoutFork` returns undefined and the caller
 * uses Node's own spawn.
 */

export interface SpawnOptions {
  /** The whole environment of the program (nothing is inherited); PATH is searched for `file`. */
  env: Record<string, string>;
  /** Which of stdin, stdout and stderr get a pipe; the others are /dev/null. */
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /**
   * stdout is read into recycled memory and comes as a RecyclingReadable (see
   * src/memory/pooled-reader.ts). Only where the addon starts the program.
   */
  pooledStdout?: boolean;
  /** Start the program as the leader of a new session and process group (Node's `detached`). */
  newSession: boolean;
}

export interface ProgramEnd {
  /** Set when the program exited. */
  exitCode?: number;
  /** Set when a signal ended it. */
  signal?: NodeJS.Signals;
  /** Set when it could not be started after all (Node's spawn reports some failures late). */
  error?: NodeJS.ErrnoException;
}

export interface SpawnedProgram {
  /** Undefined when it never started (then `ended` carries the error). */
  pid: number | undefined;
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  /**
   * Settles once the program has ended and its stdout and stderr have closed, so everything it
   * wrote has been read (or the reader destroyed the stream). Never rejects.
   */
  ended: Promise<ProgramEnd>;
}

interface Addon {
  spawn(
    file: string,
    argv: string[],
    envp: string[],
    pipes: [boolean, boolean, boolean],
    newSession: boolean,
    onExit: (exitCode: number | null, signal: number | null) => void,
  ): [pid: number, stdin: number, stdout: number, stderr: number];
}

let addon: Addon | null | undefined;
function loaded(): Addon | undefined {
  if (addon === undefined) addon = process.platform === 'linux' ? (loadAddon<Addon>('posix_spawn') ?? null) : null;
  return addon ?? undefined;
}

const signalNames = new Map(Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/**
 * The file that would run for `file`: itself when it holds a slash, else the first executable of
 * that name on `searchPath`. Throws an Error with code ENOENT or EACCES, as Node's spawn reports
 * them, so that both ways of starting a program fail alike and at once.
 */
export function findProgram(file: string, searchPath: string | undefined): string {
  const candidates = file.includes('/')
    ? [file]
    : (searchPath ?? '/usr/local/bin:/usr/bin:/bin').split(':').map((dir) => path.join(dir || '.', file));
  let denied = false;
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EACCES') denied = true;
    }
  }
  const code = denied ? 'EACCES' : 'ENOENT';
  throw Object.assign(new Error(`spawn ${file} ${code}`), { code, path: file });
}

/** Undefined when this machine cannot spawn without fork (see above); throws when `file` cannot start. */
export function spawnWithoutFork(file: string, args: readonly string[], options: SpawnOptions): SpawnedProgram | undefined {
  const native = loaded();
  if (!native) return undefined;
  const resolved = findProgram(file, options.env.PATH);
  const envp = Object.entries(options.env).map(([k, v]) => `${k}=${v}`);
  let exited!: (end: ProgramEnd) => void;
  const exit = new Promise<ProgramEnd>((resolve) => (exited = resolve));
  const [pid, inFd, outFd, errFd] = native.spawn(
    resolved,
    [file, ...args],
    envp,
    [options.stdin, options.stdout, options.stderr],
    options.newSession,
    (exitCode, signal) =>
      exited(
        exitCode !== null ? { exitCode } : signal !== null ? { signal: signalNames.get(signal) ?? (`SIG${signal}` as NodeJS.Signals) } : {},
      ),
  );
  const stdin = inFd >= 0 ? new Socket({ fd: inFd, readable: false, writable: true }) : null;
  const stdout = outFd < 0 ? null : options.pooledStdout ? readPooled(outFd) : new Socket({ fd: outFd, readable: true, writable: false });
  const stderr = errFd >= 0 ? new Socket({ fd: errFd, readable: true, writable: false }) : null;
  // A program that exits without reading all of its input leaves our writes failing with EPIPE;
  // whoever writes sees that through its own pipeline, and the exit status tells the story.
  stdin?.on('error', () => {});
  const closed = (s: Readable | null): Promise<void> =>
    s === null || s.closed ? Promise.resolve() : new Promise((r) => s.once('close', () => r()));
  const ended = Promise.all([exit, closed(stdout), closed(stderr)]).then(([end]) => {
    // Nobody writes to a program that has gone.
    stdin?.destroy();
    return end;
  });
  return { pid, stdin, stdout, stderr, ended };
}
