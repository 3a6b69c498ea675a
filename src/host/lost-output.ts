import { ExitCode } from '../errors.js';
import { fileError } from '../io/bounded-read.js';
import type { AzsError } from '../errors.js';

/**
 * The process's own standard output and error, whose reader may go away (`azsbackup ... | head -1`,
 * a log collector that restarts, a closed terminal) or whose file may fill. A write that fails
 * emits 'error' on its stream, and unhandled that ends the process with Node's stack trace
 * wherever the command is: a backup at its first verbose line, its job interrupted and its lock
 * left. Here a failed stream is only written no more; the command runs to its end (a stopped
 * backup still ends in order), and a failure other than the reader's going away (EPIPE) is
 * reported once the command is done, since what it printed is incomplete.
 */

type Name = 'stdout' | 'stderr';
const failures = new Map<Name, unknown>();
let watching = false;

export function watchOwnOutput(): void {
  if (watching) return;
  watching = true;
  for (const name of ['stdout', 'stderr'] as const) {
    process[name].on('error', (e: unknown) => {
      if (!failures.has(name)) failures.set(name, e);
    });
  }
}

const isReaderGone = (e: unknown): boolean => (e as NodeJS.ErrnoException | undefined)?.code === 'EPIPE';

/**
 * Why standard output did not take the command's objects, once their write has settled (its
 * 'error' comes a tick later); undefined when it did, or when its reader left on purpose.
 */
export async function outputFailure(): Promise<AzsError | undefined> {
  await new Promise((resolve) => setImmediate(resolve));
  const e = failures.get('stdout');
  if (e === undefined || isReaderGone(e)) return undefined;
  return fileError(
    e,
    'standard output',
    {
      what: 'output of the command to',
      remediation:
        'The command itself ran to its end; its output is incomplete. Send standard output where there is room (or fix what it goes to), and read the outcome again (Get-InfrastructureBackup, Get-BackupAlert).',
      exitCode: ExitCode.Failure,
    },
    'write',
  );
}
