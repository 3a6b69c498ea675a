/**
 * Error records on stderr: one JSON line each when stderr is not a terminal (the PowerShell module
 * and scripts parse them), a readable block when it is. Anything that is not an AzsError is a bug
 * and is reported as an internal error with its stack.
 */
import { readFileSync } from 'node:fs';
import type { ErrorRecord } from '../errors.js';
import { sanitize } from '../output/display.js';

/**
 * Text as a terminal shows it: messages quote what others chose (a role's or a backup's name from a
 * BackupInfo.xml that anyone who can write to the share wrote), which must not drive the terminal,
 * as tables and lists never let it. The JSON lines keep it exact for the programs that read them.
 */
const onTerminal = (text: string): string => sanitize(text, true);

/** What the host needs of an AzsError. */
export interface ErrorLike {
  message: string;
  errorId: string;
  exitCode: number;
  toRecord(dialect?: 'cli' | 'powershell'): ErrorRecord;
}

/**
 * Recognises an AzsError by shape, not by class: each cmdlet is bundled on its own, so the class a
 * cmdlet throws is a different copy of AzsError from the host's.
 */
export function asAzsError(e: unknown): ErrorLike | undefined {
  if (!(e instanceof Error)) return undefined;
  const x = e as Error & Partial<ErrorLike>;
  return typeof x.errorId === 'string' && typeof x.exitCode === 'number' && typeof x.toRecord === 'function' ? (x as ErrorLike) : undefined;
}

export interface ReportTarget {
  stderr: NodeJS.WritableStream;
  stderrIsTTY: boolean;
  /** Whose syntax recommended actions use; the command line's unless the PowerShell module calls. */
  dialect?: 'cli' | 'powershell';
}

export function printErrorRecord(t: ReportTarget, source: string, e: ErrorLike, terminating: boolean, exitCode?: number): void {
  // A non-terminating record says the exit code the command ends with (3 for a partial success).
  const record = { ...e.toRecord(t.dialect ?? 'cli'), ...(exitCode !== undefined ? { ExitCode: exitCode } : {}) };
  if (!t.stderrIsTTY) {
    t.stderr.write(`${JSON.stringify({ ErrorRecord: { ...record, Terminating: terminating } })}\n`);
    return;
  }
  const lines = [`${source}: ${onTerminal(record.Message)}`];
  if (record.RecommendedAction) lines.push(`    RecommendedAction: ${onTerminal(record.RecommendedAction)}`);
  lines.push(`    ErrorId: ${record.ErrorId}, Category: ${record.Category}${terminating ? '' : ' (non-terminating)'}`);
  t.stderr.write(`${lines.join('\n')}\n`);
}

/**
 * A warning: the command goes on (PowerShell's Write-Warning). One JSON line `{"Warning":{...}}`
 * when stderr is not a terminal, which the PowerShell module turns into Write-Warning.
 */
export function printWarning(t: ReportTarget, message: string, targetObject?: string): void {
  if (!t.stderrIsTTY) {
    t.stderr.write(`${JSON.stringify({ Warning: { Message: message, TargetObject: targetObject ?? null } })}\n`);
    return;
  }
  t.stderr.write(`WARNING: ${onTerminal(message)}\n`);
}

const fallbackTracker = 'the AzsBackup issue tracker';

/** The issue tracker named by package.json "bugs", read only when there is a bug to report. */
export function issueTracker(packageJson: URL = new URL('../../package.json', import.meta.url)): string {
  try {
    const pkg = JSON.parse(readFileSync(packageJson, 'utf8')) as { bugs?: string | { url?: string } };
    const bugs = typeof pkg.bugs === 'string' ? pkg.bugs : pkg.bugs?.url;
    return bugs || fallbackTracker;
  } catch {
    return fallbackTracker;
  }
}

export function printInternalError(t: ReportTarget, source: string, e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  const report = `This is a bug in AzsBackup; please report this at ${issueTracker()}, with the command you ran and this message.`;
  const stack = err.stack ?? `${err.name}: ${err.message}`;
  if (!t.stderrIsTTY) {
    const record = {
      Message: `internal error: ${err.message}`,
      ErrorId: 'InternalError',
      Category: 'NotSpecified',
      TargetObject: null,
      RecommendedAction: report,
      ExitCode: 1,
      Terminating: true,
      ScriptStackTrace: stack,
    };
    t.stderr.write(`${JSON.stringify({ ErrorRecord: record })}\n`);
    return;
  }
  t.stderr.write(`${source}: internal error: ${onTerminal(`${err.message}\n${stack}`)}\n${report}\n`);
}

/**
 * A warning, verbose or debug line on stderr: `WARNING: ...` on a terminal, else one JSON line
 * (`{"Verbose":"..."}`), which the PowerShell module turns into its own streams.
 */
export function printStreamLine(t: ReportTarget, level: 'Warning' | 'Verbose' | 'Debug', message: string): void {
  // A warning has the shape of printWarning's, whoever writes it.
  if (level === 'Warning') printWarning(t, message);
  else if (!t.stderrIsTTY) t.stderr.write(`${JSON.stringify({ [level]: message })}\n`);
  else t.stderr.write(`${level.toUpperCase()}: ${onTerminal(message)}\n`);
}
