/**
 * The host: one invocation of one cmdlet. Resolves the name, prints help, parses and validates the
 * command line from the manifest, reads secrets, imports only that cmdlet's file, runs it, formats
 * its objects and maps every error to an error record and an exit code.
 */
import { AzsError, ExitCode, quoted, stoppedBy } from '../errors.js';
import type { CmdletManifest } from '../manifest/model.js';
import { asksForHelp, parseCommandLine, type CommandLine, type OutputFormat } from './argv.js';
import type { BoundParameters, CmdletContext } from './cmdlet.js';
import { formatCmdletList, formatHelp } from './help.js';
import { resolveHome } from './home.js';
import { checkHome } from '../config/home-folder.js';
import { sweepPrivateDirs } from '../process/private-dir.js';
import { InputReader, type InputStream } from './input.js';
import { outputFailure, watchOwnOutput } from './lost-output.js';
import { createProgress } from './progress.js';
import {
  asAzsError,
  printErrorRecord,
  printInternalError,
  printStreamLine,
  printWarning,
  type ErrorLike,
  type ReportTarget,
} from './report.js';
import { loadCatalog, loadCmdlet, type Catalog, type Locations } from './resolve.js';
import { resourceLimitError } from './resource-limits.js';
import { readSecrets, secretEnvName } from './secrets.js';
import { createShouldProcess } from './should-process.js';
import { closeMatches } from './similar.js';

/** For the process entry points (bin/azsbackup.js), which run one host each. */
export { tuneAllocator } from '../native/allocator.js';

export interface HostIO {
  stdin: InputStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
  stdinIsTTY: boolean;
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  /** Terminal width for tables, help and the progress bar. */
  columns?: number | undefined;
  /** Manifest XML folder; default AZSBACKUP_MANIFESTS_DIR, else the compiled manifests. */
  manifestsDir?: string | undefined;
  /** Compiled manifests JSON; default manifests.json beside the host's folder. */
  compiledManifests?: string | undefined;
  /** Folder of <Verb-Noun>.js; default AZSBACKUP_CMDLETS_DIR, else the built cmdlets. */
  cmdletsDir?: string | undefined;
  /** Aborts the cmdlet like SIGINT does (tests). */
  signal?: AbortSignal | undefined;
  /**
   * Install SIGINT/SIGTERM/SIGHUP handlers on the process, and survive its stdout and stderr failing
   * (lost-output.ts); default true only with the process's own streams.
   */
  handleSignals?: boolean | undefined;
}

const helpTokens = new Set(['-?', '/?', '--help', '-help', '-h', 'help']);

/**
 * A terminal that reports 0 columns (a pseudo-terminal nobody sized, as `script` or `docker -t`
 * make) has an unknown width, not a zero one: help would wrap after every word and the progress
 * bar shrink to an ellipsis that is never cleared.
 */
function usableWidth(columns: number | undefined): number | undefined {
  return columns !== undefined && columns > 0 ? columns : undefined;
}

function processIO(io: Partial<HostIO>): HostIO {
  const own = io.stdin === undefined && io.stdout === undefined && io.stderr === undefined;
  const env = io.env ?? process.env;
  return {
    stdin: io.stdin ?? process.stdin,
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    env,
    stdinIsTTY: io.stdinIsTTY ?? (io.stdin === undefined && process.stdin.isTTY === true),
    stdoutIsTTY: io.stdoutIsTTY ?? (io.stdout === undefined && process.stdout.isTTY === true),
    stderrIsTTY: io.stderrIsTTY ?? (io.stderr === undefined && process.stderr.isTTY === true),
    columns: usableWidth(io.columns ?? (io.stdout === undefined ? process.stdout.columns : undefined)),
    manifestsDir: io.manifestsDir ?? env.AZSBACKUP_MANIFESTS_DIR,
    compiledManifests: io.compiledManifests,
    cmdletsDir: io.cmdletsDir ?? env.AZSBACKUP_CMDLETS_DIR,
    signal: io.signal,
    handleSignals: io.handleSignals ?? own,
  };
}

function unknownCmdlet(name: string, catalog: Catalog): AzsError {
  const suggestions = closeMatches(
    name,
    catalog.all().map((c) => c.name),
  );
  return new AzsError(
    `The term '${quoted(name)}' is not recognized as the name of an azsbackup cmdlet.${suggestions.length ? ` Did you mean ${suggestions.join(', ')}?` : ''}`,
    {
      errorId: 'CommandNotFoundException',
      category: 'ObjectNotFound',
      exitCode: ExitCode.Usage,
      targetObject: name,
      recommendedAction: "Run 'azsbackup --help' to list the cmdlets.",
    },
  );
}

/** A signal this soon after the first is taken for its echo, not for a second Ctrl-C. */
const SIGNAL_ECHO_MS = 500;
/**
 * The signals that stop a cmdlet in order: Ctrl-C, SIGTERM (systemd, kill) and SIGHUP (the terminal
 * or ssh session it ran in was closed). Left to Node, SIGHUP ended the process at once: a backup's
 * .partial folder, its lock and its role's programs (in sessions of their own, which a hang-up
 * does not reach) stayed behind.
 */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/**
 * How long a cmdlet has, after one of STOP_SIGNALS, to stop in order (stop its programs, remove
 * what it half wrote) before the host ends the process itself: any cmdlet ends within two
 * seconds of a signal, also one waiting on something that does not watch its AbortSignal.
 */
export const SIGNAL_GRACE_MS = 1500;

/** Runs one command line; resolves to the exit code. Never throws. */
export async function main(argv: string[], io: Partial<HostIO> = {}): Promise<number> {
  const h = processIO(io);
  // Known before the command line is parsed, so even a usage error speaks the caller's syntax.
  const dialect =
    argv.some((a, i) => /^--?dialect$/i.test(a) && argv[i + 1]?.toLowerCase() === 'powershell') ||
    argv.some((a) => /^--?dialect[:=]powershell$/i.test(a))
      ? 'powershell'
      : 'cli';
  const report: ReportTarget = { stderr: h.stderr, stderrIsTTY: h.stderrIsTTY, dialect };
  const loc: Locations = { manifestsDir: h.manifestsDir, compiledManifests: h.compiledManifests, cmdletsDir: h.cmdletsDir };
  const abort = new AbortController();
  let source = 'azsbackup';
  let firstSignalAt: number | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (firstSignalAt === undefined) {
      firstSignalAt = Date.now();
      const stopped = stoppedBy('command', sig);
      abort.abort(stopped);
      setTimeout(() => {
        finishProgress();
        printErrorRecord(report, source, stopped, true);
        process.exit(ExitCode.Interrupted);
      }, SIGNAL_GRACE_MS).unref();
      return;
    }
    // A second Ctrl-C ends at once, for a cmdlet that does not honour its signal. Not an echo of
    // the first (a library that cleans up on a signal and raises it again at once, as conf's
    // atomic writes did through when-exit), which must not cut short the orderly stop it began.
    if (Date.now() - firstSignalAt >= SIGNAL_ECHO_MS) process.exit(ExitCode.Interrupted);
  };
  const onExternal = (): void => abort.abort(stoppedBy('command', 'aborted'));
  if (h.signal) {
    if (h.signal.aborted) onExternal();
    else h.signal.addEventListener('abort', onExternal, { once: true });
  }
  if (h.handleSignals) {
    watchOwnOutput();
    for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  }
  let finishProgress = (): void => {};
  try {
    const catalog = await loadCatalog(loc);
    const first = argv[0];
    if (first === undefined || helpTokens.has(first.toLowerCase())) {
      h.stdout.write(formatCmdletList(catalog.all(), h.columns ?? 100));
      return ExitCode.Success;
    }
    const m = catalog.find(first);
    if (!m) throw unknownCmdlet(first, catalog);
    source = m.name;
    const rest = argv.slice(1);
    if (asksForHelp(m, rest)) {
      h.stdout.write(formatHelp(m, h.columns ?? 100));
      return ExitCode.Success;
    }
    return await run(m, rest, catalog, h, report, loc, abort.signal, (f) => (finishProgress = f));
  } catch (e) {
    finishProgress();
    if (abort.signal.aborted) {
      printErrorRecord(report, source, abort.signal.reason as AzsError, true);
      return ExitCode.Interrupted;
    }
    const err = asAzsError(e) ?? resourceLimitError(e);
    if (err) {
      printErrorRecord(report, source, err, true);
      return err.exitCode;
    }
    printInternalError(report, source, e);
    return ExitCode.Failure;
  } finally {
    if (h.handleSignals) for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    h.signal?.removeEventListener('abort', onExternal);
  }
}

/** -Confirm asks on a terminal: without one it is refused, unless -WhatIf makes it moot. */
function assertConfirmPossible(m: CmdletManifest, cl: CommandLine, interactive: boolean): void {
  if (cl.confirm === true && !cl.whatIf && !interactive) {
    throw new AzsError(`-Confirm asks on a terminal, and ${m.name} is not running on one.`, {
      errorId: 'ConfirmationNotPossible',
      category: 'InvalidOperation',
      exitCode: ExitCode.Usage,
      recommendedAction: 'Run it on a terminal, give -Confirm:$false to proceed without asking, or -WhatIf to see what it would do.',
    });
  }
}

/** The command's secrets, read once; afterwards AZSBACKUP_<NAME> is gone from this process's environment. */
async function takeSecrets(m: CmdletManifest, cl: CommandLine, catalog: Catalog, h: HostIO, reader: InputReader): Promise<BoundParameters> {
  const secrets = await readSecrets(m, cl, { stdin: h.stdin, stdinIsTTY: h.stdinIsTTY, stderr: h.stderr, env: h.env, reader });
  // Read once, here: no program this command starts (a role's commands, pg_dump, an alert
  // command, the -AsJob runner) inherits a key or password from AZSBACKUP_<NAME>.
  if (h.env === process.env) {
    for (const p of catalog.all().flatMap((c) => c.parameters)) if (p.secret) delete process.env[secretEnvName(p)];
  }
  return secrets;
}

/** Progress on stderr, and the verbose/debug/warning lines where this dialect shows them. */
function progressAndStreams(
  cl: CommandLine,
  h: HostIO,
  report: ReportTarget,
): { progress: ReturnType<typeof createProgress>; streams: ReportTarget } {
  const progress = createProgress({ mode: cl.progress, stderr: h.stderr, stderrIsTTY: h.stderrIsTTY, columns: h.columns });
  // The module always gets every stream (PowerShell's preferences filter them); the command line
  // shows verbose and debug lines only when asked.
  const streams: ReportTarget = cl.dialect === 'powershell' ? { stderr: h.stderr, stderrIsTTY: false, dialect: 'powershell' } : report;
  progress.log = (level, message) => {
    if (level === 'Verbose' && !cl.verbose && cl.dialect !== 'powershell') return;
    if (level === 'Debug' && !cl.debug && cl.dialect !== 'powershell') return;
    printStreamLine(streams, level, message);
  };
  return { progress, streams };
}

/** What the cmdlet reports besides its objects: non-terminating errors and an exit code it sets. */
interface Outcome {
  exitOverride: number | undefined;
  nonTerminating: number;
}

interface ContextParts {
  m: CmdletManifest;
  cl: CommandLine;
  h: HostIO;
  report: ReportTarget;
  streams: ReportTarget;
  progress: ReturnType<typeof createProgress>;
  secrets: BoundParameters;
  interactive: boolean;
  reader: InputReader;
  format: OutputFormat;
  home: string;
  signal: AbortSignal;
}

function cmdletContext(parts: ContextParts, outcome: Outcome): CmdletContext {
  const { m, cl, h, report, streams, progress, secrets, interactive, reader, format, home, signal } = parts;
  const whatIfOut = format === 'table' || format === 'list' ? h.stdout : h.stderr;
  return {
    params: { ...cl.params, ...secrets },
    parameterSetName: cl.parameterSetName,
    secretsFromEnvironment: new Set(Object.keys(secrets).filter((name) => !cl.secrets.some((r) => r.parameter.name === name))),
    shouldProcess: createShouldProcess({
      whatIf: cl.whatIf,
      // -Force skips the confirmation, as in PowerShell, unless -Confirm is given explicitly.
      confirm: cl.confirm ?? (cl.params.Force === true ? false : undefined),
      confirmImpact: m.confirmImpact,
      interactive,
      reader,
      whatIfOut,
      promptOut: h.stderr,
    }),
    whatIf: cl.whatIf ? (line) => void whatIfOut.write(`What if: ${line}\n`) : undefined,
    progress,
    writeWarning(message, targetObject) {
      printWarning(streams, message, targetObject);
    },
    dialect: cl.dialect,
    writeError(error) {
      outcome.nonTerminating++;
      const err: ErrorLike | undefined = asAzsError(error) ?? resourceLimitError(error);
      if (err) printErrorRecord(report, m.name, err, false, outcome.exitOverride ?? ExitCode.Partial);
      else printInternalError(report, m.name, error);
    },
    setExitCode(code) {
      outcome.exitOverride = code;
    },
    home,
    signal,
  };
}

/** The cmdlet's objects on stdout in the chosen format; a list cmdlet prints [] in JSON even when empty. */
async function writeObjects(
  m: CmdletManifest,
  cl: CommandLine,
  result: unknown,
  format: OutputFormat,
  catalog: Catalog,
  h: HostIO,
): Promise<void> {
  const objects = result === undefined ? [] : Array.isArray(result) ? result : [result];
  const list = (m.setOutput?.[cl.parameterSetName] ?? m.output) === 'List';
  if (objects.length || (format === 'json' && list)) {
    const { formatObjects } = await import('../output/index.js');
    h.stdout.write(formatObjects(objects, m.outputType, format, catalog.types, { width: h.columns, list }));
  }
}

async function run(
  m: CmdletManifest,
  args: string[],
  catalog: Catalog,
  h: HostIO,
  report: ReportTarget,
  loc: Locations,
  signal: AbortSignal,
  onProgress: (finish: () => void) => void,
): Promise<number> {
  const cl = await parseCommandLine(m, args, h.env);
  const interactive = h.stdinIsTTY && h.stderrIsTTY;
  assertConfirmPossible(m, cl, interactive);
  const format: OutputFormat = cl.output ?? (h.stdoutIsTTY ? 'list' : 'json');
  const reader = new InputReader(h.stdin);
  const secrets = await takeSecrets(m, cl, catalog, h, reader);
  const cmdlet = await loadCmdlet(m.name, loc);
  const home = resolveHome(h.env);
  // Nothing in a home another account could change is read, written or swept.
  checkHome(home);
  // Plaintext a killed command of this home left in its private folder goes first.
  await sweepPrivateDirs(home).catch(() => undefined);

  const { progress, streams } = progressAndStreams(cl, h, report);
  onProgress(() => progress.finish());
  const outcome: Outcome = { exitOverride: undefined, nonTerminating: 0 };
  const ctx = cmdletContext({ m, cl, h, report, streams, progress, secrets, interactive, reader, format, home, signal }, outcome);

  // Stopped while it was being loaded: it never starts (its signal would not fire again).
  if (signal.aborted) throw signal.reason;
  const result = await cmdlet(ctx);
  progress.finish();
  // A cmdlet that returns though it was stopped returns what it did before it stopped (a restore:
  // which roles are back and which are not): written before the stop is said, not dropped.
  await writeObjects(m, cl, result, format, catalog, h);
  if (signal.aborted) throw signal.reason;
  const code = outcome.exitOverride ?? (outcome.nonTerminating ? ExitCode.Partial : ExitCode.Success);
  const lost = h.handleSignals ? await outputFailure() : undefined;
  if (!lost) return code;
  printErrorRecord(report, m.name, lost, true);
  return code === ExitCode.Success ? lost.exitCode : code;
}
