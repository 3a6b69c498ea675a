/**
 * Renders a cmdlet's progress: a one-line bar on standard error when it is a terminal, JSON lines
 * with `--progress json` (for the PowerShell module's Write-Progress), nothing otherwise.
 */
import type { ProgressEvent, ProgressReporter } from '../progress.js';
import { silentProgress } from '../progress.js';
import { sanitize } from '../output/display.js';

export type ProgressTarget = NodeJS.WritableStream;

/** One JSON line per event, with PowerShell's ProgressRecord property names. */
export function jsonProgress(out: ProgressTarget): ProgressReporter {
  return {
    report(e: ProgressEvent) {
      const record = {
        Activity: e.activity,
        Status: e.status,
        PercentComplete: e.percentComplete ?? -1,
        Id: e.id ?? 0,
        ParentId: e.parentId ?? -1,
        Completed: e.completed ?? false,
      };
      out.write(`${JSON.stringify({ Progress: record })}\n`);
    },
  };
}

/**
 * A bar redrawn in place with \r. Redraws at most every `intervalMs` so a chatty engine cannot
 * flood the terminal; a completed event or a new percentage bucket always draws.
 */
export function terminalProgress(
  out: ProgressTarget,
  columns: number,
  intervalMs = 100,
  now: () => number = Date.now,
): ProgressReporter & { finish(): void } {
  let last = 0;
  let shown = false;
  const clear = (): void => {
    if (shown) out.write(`\r${' '.repeat(Math.max(0, columns - 1))}\r`);
    shown = false;
  };
  return {
    report(e: ProgressEvent) {
      if (e.completed && (e.id ?? 0) === 0) {
        clear();
        return;
      }
      if (e.completed) return;
      const t = now();
      if (shown && t - last < intervalMs) return;
      last = t;
      const pct = e.percentComplete;
      const barWidth = 20;
      const bar = pct === undefined ? '' : ` [${'#'.repeat(Math.round((pct / 100) * barWidth)).padEnd(barWidth)}] ${Math.round(pct)}%`;
      // The status may name what others chose (a role's name from the share): it must not drive the terminal.
      let line = `${sanitize(`${e.activity}: ${e.status}`, false)}${bar}`;
      if (line.length > columns - 1) line = `${line.slice(0, Math.max(0, columns - 2))}…`;
      out.write(`\r${line.padEnd(Math.max(0, columns - 1))}`);
      shown = true;
    },
    finish: clear,
  };
}

export interface ProgressChoice {
  mode: 'json' | 'none' | undefined;
  stderr: ProgressTarget;
  stderrIsTTY: boolean;
  columns: number | undefined;
}

export function createProgress(c: ProgressChoice): ProgressReporter & { finish(): void } {
  if (c.mode === 'json') return { ...jsonProgress(c.stderr), finish() {} };
  if (c.mode === undefined && c.stderrIsTTY) return terminalProgress(c.stderr, c.columns ?? 80);
  return { ...silentProgress, finish() {} };
}
