import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import { CLI, cliEnv } from './cli.js';

/**
 * A command run in a PID namespace of its own, as a container's is that shares this host's name
 * (docker --network host or --uts host, a pod with hostNetwork) and AZSBACKUP_HOME, beside one run
 * on the host.
 */

/** `unshare` can make a PID namespace here (root, or a kernel that lets users). */
export function canUnshare(): boolean {
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The CLI started in a new PID namespace, or in this one; --output json, `input` (none by default) on its standard input. */
export const cliIn =
  (namespace: 'new' | 'this') =>
  (home: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}) => {
    const node = [process.execPath, CLI, ...args, '--output', 'json'];
    const [file, ...rest] = namespace === 'new' ? ['unshare', '--pid', '--fork', '--mount-proc', ...node] : node;
    return execa(file!, rest, { env: cliEnv(home, opts.env), extendEnv: false, input: opts.input ?? '', reject: false, timeout: 60_000 });
  };
export const inNewPidNamespace = cliIn('new');
export const onThisHost = cliIn('this');

/** The first process of the namespace `unshare` (pid `unsharePid`) made: ending it ends every other one there. */
export function namespaceInit(unsharePid: number): number {
  return Number(execFileSync('pgrep', ['-P', String(unsharePid)], { encoding: 'utf8' }).trim());
}
