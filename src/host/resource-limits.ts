import { AzsError, ExitCode } from '../errors.js';

/**
 * A limit of the process's, not a bug of ours, as the error that says so: whatever code met it
 * (loading the next part of a command's own code, a walk, a thread), the operator's remedy is the
 * same, and "internal error ... This is a bug" sends them the wrong way.
 */
export function resourceLimitError(e: unknown): AzsError | undefined {
  const err = e as NodeJS.ErrnoException | undefined;
  const code = err?.code;
  if (code === 'EMFILE' || code === 'ENFILE') {
    const whose = code === 'EMFILE' ? 'this process' : 'this machine';
    return new AzsError(`The command could not open a file: ${whose} may open no more files (${err?.message ?? code}).`, {
      errorId: 'TooManyOpenFiles',
      category: 'ResourceUnavailable',
      exitCode: ExitCode.Failure,
      cause: e,
      recommendedAction:
        code === 'EMFILE'
          ? "Raise the limit on open files of the account or service that runs AzsBackup (ulimit -n, systemd's LimitNOFILE=, a container's nofile ulimit), then run the command again."
          : 'Raise the limit on open files of this machine (fs.file-max) or close the programs that hold many, then run the command again.',
    });
  }
  // new Worker where no thread may be started; fork or posix_spawn where no process may be.
  if ((code === 'ERR_WORKER_INIT_FAILED' && /EAGAIN/.test(err?.message ?? '')) || code === 'EAGAIN') {
    return new AzsError(`The command could not start a thread or program: a limit on processes is reached (${err?.message ?? code}).`, {
      errorId: 'ProcessLimitReached',
      category: 'ResourceUnavailable',
      exitCode: ExitCode.Failure,
      cause: e,
      recommendedAction:
        "Raise the limit on processes of the account or service that runs AzsBackup (ulimit -u, systemd's TasksMax= or LimitNPROC=, a container's pids limit or cgroup pids.max), then run the command again.",
    });
  }
  return undefined;
}
