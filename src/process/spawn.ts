import { spawn } from 'node:child_process';
import { nativeDisabled } from '../native/addon.js';
import { findProgram, spawnWithoutFork, type ProgramEnd, type SpawnedProgram, type SpawnOptions } from '../native/posix-spawn.js';

export type { ProgramEnd, SpawnedProgram, SpawnOptions };

/**
 * Starts a program with the given pipes. Without fork() where our addon is built (see
 * src/native/posix-spawn.c); with Node's own spawn otherwise, or when AZSBACKUP_NATIVE=off asks
 * for it. Both report alike: a program that cannot be found or run throws at once (code ENOENT or
 * EACCES), and `ended` settles once it has ended and its output has been read.
 */
export function spawnProgram(file: string, args: readonly string[], options: SpawnOptions): SpawnedProgram {
  if (!nativeDisabled()) {
    const spawned = spawnWithoutFork(file, args, options);
    if (spawned) return spawned;
  }
  const resolved = findProgram(file, options.env.PATH);
  const child = spawn(resolved, args, {
    argv0: file,
    env: options.env,
    detached: options.newSession,
    stdio: [options.stdin ? 'pipe' : 'ignore', options.stdout ? 'pipe' : 'ignore', options.stderr ? 'pipe' : 'ignore'],
  });
  child.stdin?.on('error', () => {}); // as in spawnWithoutFork: the writer's pipeline sees it
  const ended = new Promise<ProgramEnd>((resolve) => {
    // 'close' comes after the exit and after stdout and stderr have closed.
    child.once('close', (exitCode, signal) => resolve(exitCode !== null ? { exitCode } : signal !== null ? { signal } : {}));
    child.once('error', (e) => {
      if (child.pid === undefined) resolve({ error: e as NodeJS.ErrnoException });
    });
  });
  return { pid: child.pid, stdin: child.stdin, stdout: child.stdout, stderr: child.stderr, ended };
}
