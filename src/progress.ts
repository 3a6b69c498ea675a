/**
 * Progress goes through an injected reporter: nothing below cmdlets/ prints. The host renders it
 * on a terminal, as JSON lines for the PowerShell module (`--progress json`), or not at all.
 */
export interface ProgressEvent {
  /** What the whole job does, e.g. "Backup 6f1c...". */
  activity: string;
  /** What it does now, e.g. "Identity: 120 MB of 300 MB". */
  status: string;
  /** 0-100, or undefined when unknown. */
  percentComplete?: number;
  /** Distinguishes parallel activities (one per role); 0 is the job itself. */
  id?: number;
  parentId?: number;
  completed?: boolean;
}

/** PowerShell's other streams: a step with its timing or size (Verbose), detail (Debug), or something the operator should act on (Warning). */
export type LogLevel = 'Verbose' | 'Debug' | 'Warning';

export interface ProgressReporter {
  report(event: ProgressEvent): void;
  /** The steps of the work, for -Verbose and -Debug; warnings for a no-op the operator should know of. */
  log?(level: LogLevel, message: string): void;
}

export const silentProgress: ProgressReporter = { report() {} };
