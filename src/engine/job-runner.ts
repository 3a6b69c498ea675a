import { ExitCode, stoppedBy } from '../errors.js';
import { tuneAllocator } from '../native/allocator.js';
import { silentProgress } from '../progress.js';
import { runBackupJob } from './backup-job.js';
import { adoptJobLock } from './job.js';

/**
 * The detached process behind `Start-InfrastructureBackup -AsJob`: argv is the job name and the
 * role names. It waits until the starting command has handed it the job lock, then runs the job;
 * its outcome lands in the job record and the alerts, since nobody reads its output.
 */
tuneAllocator();
const [name, ...roleNames] = process.argv.slice(2);
const home = process.env.AZSBACKUP_HOME!;
// The starting command hands the lock over once it has recorded the job; while it lives, wait for it.
const lock = await adoptJobLock(home, 120_000);
if (!lock || !name) process.exit(11);
// Stopped (systemd, kill): the job ends in order, as the foreground command does on Ctrl-C: its
// programs stopped, nothing committed, the job Failed with an alert, temporary files removed.
const stop = new AbortController();
const onSignal = (signal: NodeJS.Signals): void => {
  stop.abort(stoppedBy('backup job', signal));
};
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, onSignal);
try {
  await runBackupJob({
    home,
    name,
    lock,
    roleNames: roleNames.length ? roleNames : undefined,
    progress: silentProgress,
    signal: stop.signal,
  });
} catch {
  process.exitCode = stop.signal.aborted ? ExitCode.Interrupted : 1;
}
