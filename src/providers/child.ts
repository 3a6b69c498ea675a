import { PassThrough, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { recycleThrough, recyclerOf } from '../memory/recycling-readable.js';
import { reportingWrites } from '../memory/reporting-writes.js';
import { spawnProgram, type SpawnedProgram } from '../process/spawn.js';
import { AzsError, ExitCode, isAzsError } from '../errors.js';
import { earlyFailure } from './input.js';

/**
 * Runs one external program for a provider: never through a shell, in its own process group so a
 * time-out or cancellation also ends whatever it spawned (a script's `tar | gzip` would otherwise
 * keep the pipe open and the stream would never end), with the tail of its stderr kept for the
 * error message.
 */

export interface ProgramSpec {
  /** [file, ...args]; passed to the kernel as is. */
  argv: readonly string[];
  /** Merged over the inherited environment; an undefined value removes the variable. */
  env?: Record<string, string | undefined>;
  /** Undefined means no limit. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Prefix of the ErrorIds raised, e.g. 'CommandProvider'. */
  errorPrefix: string;
  /** What to call the program in messages, e.g. "export command 'tar'". */
  label: string;
  /**
   * The program's own meaning of a failing exit, when it has one (GNU tar's 1: "some files
   * differ"); undefined leaves the generic message.
   */
  explainExit?(exitCode: number, stderr: string): AzsError | undefined;
  /**
   * A clean exit that the program's stderr says was not whole (pg_dump's "subscriptions not dumped"
   * warning); undefined lets exit 0 stand. Gets stderr as errors may repeat it.
   */
  explainSuccess?(stderr: string): AzsError | undefined;
  /**
   * Import only: called with each chunk of the data once the program's pipe has taken it; by
   * default the data's own hand-back when it offers one (src/memory/recycling-readable.ts).
   */
  written?(chunk: Buffer): void;
  /** Values never to repeat from the program's stderr (a database password given in its environment). */
  secrets?: readonly string[];
  /**
   * Import only: the program must read its input to the end. One that exits 0 having closed its
   * input while data was left (beyond zero padding, as a tar end-of-archive leaves) did not import
   * the role whole, and the import fails (`<errorPrefix>InputNotRead`).
   */
  wholeInput?: boolean;
}

/** Bounded, so a chatty program cannot fill memory; the end of stderr is where the reason usually is. */
export const STDERR_TAIL_BYTES = 4096;
const KILL_GRACE_MS = 5000;
const PIPE_GRACE_MS = 1000;

class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= STDERR_TAIL_BYTES) {
      this.size -= this.chunks.shift()!.length;
    }
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    const cut = all.length > STDERR_TAIL_BYTES ? all.subarray(all.length - STDERR_TAIL_BYTES) : all;
    return (all.length > STDERR_TAIL_BYTES ? '…' : '') + cut.toString('utf8').trim();
  }
}

type StopReason = 'timeout' | 'aborted' | 'consumer-closed' | 'input-failed';

/** Process groups still alive, so they die with us even when we exit without cleaning up. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function trackGroup(pid: number): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const g of liveGroups) killGroup(g, 'SIGKILL');
    });
  }
  liveGroups.add(pid);
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

interface Outcome {
  failed: boolean;
  exitCode?: number;
  signal?: string;
  code?: string;
  shortMessage?: string;
}

/** A started program: the pipes it was given, and how it ended once its output has been read. */
type Launched = Omit<SpawnedProgram, 'ended'> & { outcome: Promise<Outcome> };

function launch(spec: ProgramSpec, mode: 'export' | 'import'): Launched {
  const [file, ...args] = spec.argv;
  if (!file) throw new Error('ProgramSpec.argv is empty'); // validated earlier; a bug if reached
  try {
    const p = spawnProgram(file, args, {
      env: environment(spec.env),
      stdin: mode === 'import',
      stdout: mode === 'export',
      pooledStdout: true,
      stderr: true,
      newSession: true,
    });
    const outcome = p.ended.then(
      ({ error, ...end }): Outcome =>
        error ? { failed: true, code: error.code, shortMessage: error.message } : { failed: end.exitCode !== 0, ...end },
    );
    return { ...p, outcome };
  } catch (e) {
    const { code, message } = e as NodeJS.ErrnoException;
    return {
      pid: undefined,
      stdin: null,
      stdout: null,
      stderr: null,
      outcome: Promise.resolve({ failed: true, code, shortMessage: message }),
    };
  }
}

/** The inherited environment with `overrides` merged over it; an undefined value removes the variable. */
function environment(overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...overrides })) if (v !== undefined) merged[k] = v;
  return merged;
}

interface Running extends Launched {
  tail: Tail;
  stop(reason: StopReason, signal?: NodeJS.Signals): void;
  reason(): StopReason | undefined;
  dispose(): void;
}

function start(spec: ProgramSpec, mode: 'export' | 'import'): Running {
  const launched = launch(spec, mode);
  const tail = new Tail();
  launched.stderr?.on('data', (c: Buffer) => tail.push(c));

  let stopReason: StopReason | undefined;
  let timer: NodeJS.Timeout | undefined;
  let forceTimer: NodeJS.Timeout | undefined;
  const pid = launched.pid;
  if (pid !== undefined) trackGroup(pid);

  let abandonTimer: NodeJS.Timeout | undefined;
  const forceKill = (): void => {
    if (pid === undefined) return;
    killGroup(pid, 'SIGKILL');
    // A descendant that left the group (setsid, a daemon) can hold our pipes open for ever, and the
    // program's end is only seen once they close: a moment after the kill, they are let go.
    abandonTimer ??= setTimeout(() => {
      for (const pipe of [launched.stdin, launched.stdout, launched.stderr]) pipe?.destroy();
    }, PIPE_GRACE_MS);
    abandonTimer.unref();
  };
  const stop = (reason: StopReason, signal: NodeJS.Signals = 'SIGTERM'): void => {
    if (pid === undefined || !liveGroups.has(pid)) return;
    stopReason ??= reason;
    if (signal === 'SIGKILL') return forceKill();
    killGroup(pid, signal);
    if (!forceTimer) {
      forceTimer = setTimeout(forceKill, KILL_GRACE_MS);
      forceTimer.unref();
    }
  };
  if (spec.timeoutMs !== undefined) {
    timer = setTimeout(() => stop('timeout'), spec.timeoutMs);
    timer.unref();
  }
  const onAbort = (): void => stop('aborted');
  if (spec.signal) {
    if (spec.signal.aborted) queueMicrotask(onAbort);
    else spec.signal.addEventListener('abort', onAbort, { once: true });
  }
  const dispose = (): void => {
    if (timer) clearTimeout(timer);
    if (forceTimer) clearTimeout(forceTimer);
    if (abandonTimer) clearTimeout(abandonTimer);
    spec.signal?.removeEventListener('abort', onAbort);
    if (pid !== undefined) {
      // The leader is gone; anything it left behind in its group goes too.
      killGroup(pid, 'SIGKILL');
      liveGroups.delete(pid);
    }
  };
  return { ...launched, tail, stop, reason: () => stopReason, dispose };
}

/**
 * A program's stderr as it may be repeated in an error, which goes into job records, alerts (sent
 * to webhooks) and BackupInfo.xml: without the passwords of URIs (scheme://user:password@,
 * ?password=), of SQL a failing pg_restore repeats ("Command was: CREATE USER MAPPING ... OPTIONS
 * (password '...')", ALTER ROLE ... PASSWORD '...'), nor the values the provider named as secret;
 * and without the table data PostgreSQL quotes in its errors ("Failing row contains (...)",
 * "Key (email)=(...) already exists", "COPY users, line 3: \"...\"", "column id: \"...\"").
 */
export function redactedStderr(stderr: string, secrets: readonly string[] = []): string {
  let text = stderr
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@\s]*@/gi, '$1:…@')
    .replace(/([?&;\s]password=)[^&\s]*/gi, '$1…')
    .replace(/("?\bpassword"?\s+)'(?:[^']|'')*'/gi, "$1'…'")
    .replace(/(Failing row contains )\(.*\)/g, '$1(…)')
    .replace(/(\bKey \((?:[^()]|\([^()]*\))*\)=)\(.*?\)( already exists| is not present| conflicts| is still referenced)/g, '$1(…)$2')
    .replace(/(\bCOPY [^\n,]+, line \d+(?:, column [^:\n]+)?: )".*/g, '$1"…"')
    .replace(/(invalid input (?:syntax|value) for [^:\n]*: )".*?"/g, '$1"…"');
  for (const secret of secrets) if (secret.length >= 4) text = text.split(secret).join('…');
  return text;
}

function failure(spec: ProgramSpec, run: Running, r: Outcome): AzsError | undefined {
  const reason = run.reason();
  const stderr = redactedStderr(run.tail.text(), spec.secrets);
  const withStderr = (s: string): string => (stderr ? `${s}. stderr: ${stderr}` : `${s}; it wrote nothing to stderr`);
  if (reason === 'timeout') {
    return new AzsError(
      withStderr(`The ${spec.label} did not finish within its time limit of ${(spec.timeoutMs ?? 0) / 1000} s and was killed`),
      {
        errorId: `${spec.errorPrefix}Timeout`,
        category: 'OperationTimeout',
        targetObject: spec.argv[0],
        recommendedAction: "Find out why the program is slow or stuck, or raise the role's time limit (TimeoutSeconds).",
      },
    );
  }
  if (reason === 'aborted') {
    return new AzsError(`The ${spec.label} was stopped because the job was cancelled`, {
      errorId: `${spec.errorPrefix}Cancelled`,
      category: 'OperationStopped',
      targetObject: spec.argv[0],
    });
  }
  if (!r.failed) return spec.explainSuccess?.(stderr);
  if (r.code === 'ENOENT' || r.code === 'EACCES') {
    return new AzsError(`The ${spec.label} could not be started (${r.code}): ${r.shortMessage ?? ''}`.trim(), {
      errorId: `${spec.errorPrefix}ProgramNotFound`,
      category: 'ObjectNotFound',
      exitCode: ExitCode.Failure,
      targetObject: spec.argv[0],
      recommendedAction: 'Give the program as an absolute path to an executable file, or install it on this machine.',
    });
  }
  if (r.code === 'EAGAIN' && run.pid === undefined) return processLimitReached(spec);
  const explained = r.exitCode !== undefined ? spec.explainExit?.(r.exitCode, stderr) : undefined;
  if (explained) return explained;
  const how =
    r.exitCode !== undefined
      ? `exited with code ${r.exitCode}`
      : r.signal
        ? `was killed by ${r.signal}`
        : `failed (${r.shortMessage ?? 'unknown reason'})`;
  return new AzsError(withStderr(`The ${spec.label} ${how}`), {
    errorId: `${spec.errorPrefix}Failed`,
    category: 'InvalidOperation',
    exitCode: ExitCode.Failure,
    targetObject: spec.argv[0],
    recommendedAction: "Read the program's stderr above, fix the cause and run the job again.",
  });
}

/**
 * fork or posix_spawn failing with EAGAIN: this account, or the service or container it runs in, may
 * start no more processes (threads count too). The program never ran: it has no stderr to read,
 * and the role's source is not at fault.
 */
function processLimitReached(spec: ProgramSpec): AzsError {
  return new AzsError(
    `The ${spec.label} could not be started: a limit on processes is reached (EAGAIN: this account, or the service or container it runs in, may start no more processes or threads)`,
    {
      errorId: `${spec.errorPrefix}ProcessLimit`,
      category: 'ResourceUnavailable',
      exitCode: ExitCode.Failure,
      targetObject: spec.argv[0],
      recommendedAction:
        "Raise the limit on processes of the account or service that runs AzsBackup (ulimit -u, systemd's TasksMax= or LimitNPROC=, a container's pids limit or cgroup pids.max), or run the job when fewer processes run.",
    },
  );
}

/**
 * Starts the program and returns its stdout. The stream ends only after the program exited 0; any
 * other outcome destroys it with an AzsError. Destroying the stream stops the program.
 */
export function exportFromProgram(spec: ProgramSpec): Readable {
  const run = start(spec, 'export');
  const out = new PassThrough();
  // The program's output buffers pass through `out` as they are, so its reader can hand them back.
  if (run.stdout) recycleThrough(out, run.stdout);
  let settled = false;
  run.stdout?.pipe(out, { end: false });
  out.on('close', () => {
    if (settled) return;
    run.stop('consumer-closed');
    // Unread output would otherwise keep the program's end from being seen.
    run.stdout?.destroy();
  });
  void run.outcome.then((r) => {
    settled = true;
    run.dispose();
    const err = failure(spec, run, r);
    if (err) out.destroy(err);
    else out.end();
  });
  return out;
}

function inputFailed(spec: ProgramSpec, inputError: unknown): AzsError {
  if (isAzsError(inputError)) return inputError;
  return new AzsError(
    `The role data stream failed while the ${spec.label} was reading it: ${(inputError as Error)?.message ?? String(inputError)}`,
    {
      errorId: `${spec.errorPrefix}InputFailed`,
      category: 'ReadError',
      targetObject: spec.argv[0],
      cause: inputError,
      recommendedAction: 'Check the backup with Test-InfrastructureBackup; the program was stopped and may have applied part of the data.',
    },
  );
}

/**
 * Runs the program with `data` on its stdin and resolves when it exited 0 after reading it. If
 * `data` fails, the program is killed at once (SIGKILL, so it cannot mistake the closed pipe for a
 * clean end of input and commit half of it) and the data's error is thrown.
 */
export async function importIntoProgram(spec: ProgramSpec, data: Readable): Promise<void> {
  const early = earlyFailure(data);
  if (early) {
    // Reported here; the stream's own 'error' event may still be on its way and must not go unheard.
    data.on('error', () => {});
    throw inputFailed(spec, early);
  }
  const run = start(spec, 'import');
  const written = spec.written ?? recyclerOf(data);
  const left = { closed: false, dataBytes: 0 };
  let inputError: unknown;
  // Registered before pipeline() so the kill happens before stdin is closed.
  const onDataError = (e: unknown): void => {
    inputError ??= e;
    run.stop('input-failed', 'SIGKILL');
  };
  data.once('error', onDataError);
  // A program that could not start has no stdin; its outcome says why, and the data is let go.
  const sink = (stdin: Writable): Writable =>
    spec.wholeInput ? wholeInputSink(stdin, written, left) : written ? reportingWrites(stdin, written) : stdin;
  const feeding = (run.stdin ? pipeline(data, sink(run.stdin)) : Promise.resolve(void data.destroy())).catch((e: unknown) => {
    // A program that exits early breaks the pipe; its exit status tells the real story.
    const code = (e as NodeJS.ErrnoException)?.code;
    if (code !== 'EPIPE' && code !== 'ERR_STREAM_PREMATURE_CLOSE' && code !== 'ERR_STREAM_DESTROYED') onDataError(e);
  });
  const r = await run.outcome;
  await feeding;
  run.dispose();
  data.off('error', onDataError);
  if (inputError !== undefined && run.reason() !== 'timeout' && run.reason() !== 'aborted') throw inputFailed(spec, inputError);
  const err = failure(spec, run, r);
  if (err) throw err;
  if (left.dataBytes > 0) throw inputNotRead(spec, left.dataBytes);
}

/**
 * stdin for a program that must read all its input: once it has closed its end, the rest of the
 * data is still read (so the stream ends as it would, checked to its end) and what is not zero
 * padding is counted. The write that met the closed pipe is not counted: part of it may have been
 * taken before the program stopped. So a program that stops within the last chunk or two is not
 * seen; one that stops earlier is.
 */
function wholeInputSink(
  stdin: Writable,
  written: ((chunk: Buffer) => void) | undefined,
  left: { closed: boolean; dataBytes: number },
): Writable {
  const isClosed = (e: unknown) =>
    ['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END'].includes(String((e as NodeJS.ErrnoException)?.code));
  return new Writable({
    highWaterMark: 0,
    write(chunk: Buffer, _encoding, done) {
      // The spawner destroys stdin once the program has gone (src/native/posix-spawn.ts).
      if (stdin.destroyed) left.closed = true;
      if (left.closed) {
        if (chunk.some((b) => b !== 0)) left.dataBytes += chunk.length;
        written?.(chunk);
        done();
        return;
      }
      stdin.write(chunk, (e) => {
        if (e && !isClosed(e) && !stdin.destroyed) return done(e);
        if (e) left.closed = true;
        written?.(chunk);
        done();
      });
    },
    final(done) {
      if (left.closed || stdin.destroyed) return done();
      // end()'s callback never comes for a stream destroyed meanwhile; 'close' does.
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        done();
      };
      stdin.once('close', finish);
      stdin.end(finish);
    },
    destroy(e, done) {
      if (e) stdin.destroy();
      done(e);
    },
  });
}

function inputNotRead(spec: ProgramSpec, bytes: number): AzsError {
  return new AzsError(
    `The ${spec.label} exited 0 without reading all of the role's data: it closed its input with at least ${bytes} bytes of it left, so the role was not restored whole.`,
    {
      errorId: `${spec.errorPrefix}InputNotRead`,
      category: 'InvalidOperation',
      targetObject: spec.argv[0],
      recommendedAction:
        'Make the import command read its standard input to the end and fail when it cannot (in a shell pipeline, set -o pipefail), then restore again. What it imported before it stopped is in place.',
    },
  );
}
