/**
 * The one error type of AzsBackup. It carries what a PowerShell ErrorRecord carries, so the host can
 * print it, the PowerShell module can rethrow it, and scripts can branch on ErrorId and exit code.
 *
 * Every layer throws AzsError for conditions it understands; anything else is a bug and the host
 * reports it as such.
 */

/** PowerShell's System.Management.Automation.ErrorCategory names that we use. */
export type ErrorCategory =
  | 'NotSpecified'
  | 'InvalidArgument'
  | 'InvalidData'
  | 'InvalidOperation'
  | 'InvalidType'
  | 'ObjectNotFound'
  | 'ResourceUnavailable'
  | 'ResourceBusy'
  | 'ResourceExists'
  | 'AuthenticationError'
  | 'PermissionDenied'
  | 'SecurityError'
  | 'ConnectionError'
  | 'QuotaExceeded'
  | 'OperationStopped'
  | 'OperationTimeout'
  | 'NotImplemented'
  | 'WriteError'
  | 'ReadError';

/** Exit codes from SPEC section 8. */
export const ExitCode = {
  Success: 0,
  Failure: 1,
  Usage: 2,
  Partial: 3,
  NotFound: 10,
  Locked: 11,
  Integrity: 12,
  Authentication: 13,
  Capacity: 14,
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The alert a failure of this kind raises, when it is a share problem (SPEC section 7). */
export type ShareAlertType = 'ShareCapacity' | 'ShareConnectivity' | 'SharePath' | 'ShareAuthentication';

export interface AzsErrorInit {
  errorId: string;
  category: ErrorCategory;
  exitCode?: ExitCode;
  targetObject?: unknown;
  recommendedAction?: string;
  /** Set on share failures so the engine raises the matching alert. */
  alertType?: ShareAlertType;
  /** The same work may well succeed if run again at once (its source changed while it was read). */
  retryable?: boolean;
  /**
   * Appended to the recommended action on the command line only, for what is the command line's
   * own (secrets from standard input or AZSBACKUP_<NAME>); PowerShell has its own ways.
   */
  commandLineHint?: string;
  cause?: unknown;
}

const defaultExitCode: Partial<Record<ErrorCategory, ExitCode>> = {
  InvalidArgument: ExitCode.Usage,
  InvalidType: ExitCode.Usage,
  ObjectNotFound: ExitCode.NotFound,
  ResourceUnavailable: ExitCode.NotFound,
  ConnectionError: ExitCode.NotFound,
  ResourceBusy: ExitCode.Locked,
  SecurityError: ExitCode.Integrity,
  InvalidData: ExitCode.Integrity,
  AuthenticationError: ExitCode.Authentication,
  QuotaExceeded: ExitCode.Capacity,
  OperationStopped: ExitCode.Interrupted,
};

/** The most of the operator's text that an error quotes, by default (see quoted()). */
export const MAX_QUOTED = 200;
const MAX_TARGET = 1000;
const MAX_MESSAGE = 2000;

/**
 * The operator's text as an error quotes it: whole when short, else its first `max` characters,
 * an ellipsis and its length, so a paste gone wrong still shows what it started with.
 */
export function quoted(text: string, max = MAX_QUOTED): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

export class AzsError extends Error {
  readonly errorId: string;
  readonly category: ErrorCategory;
  readonly exitCode: ExitCode;
  readonly targetObject: unknown;
  readonly recommendedAction: string | undefined;
  readonly alertType: ShareAlertType | undefined;
  readonly retryable: boolean;
  readonly commandLineHint: string | undefined;

  constructor(message: string, init: AzsErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'AzsError';
    this.errorId = init.errorId;
    this.category = init.category;
    this.exitCode = init.exitCode ?? defaultExitCode[init.category] ?? ExitCode.Failure;
    this.targetObject = init.targetObject;
    this.recommendedAction = init.recommendedAction;
    this.alertType = init.alertType;
    this.retryable = init.retryable ?? false;
    this.commandLineHint = init.commandLineHint;
  }

  /**
   * The error record as the host prints it and the PowerShell module reads it. Whatever a message
   * or target quotes of the operator's input is bounded here too (see quoted()), so 100 KB typed or
   * pasted by mistake never comes back as 100 KB of error.
   */
  toRecord(dialect: 'cli' | 'powershell' = 'cli'): ErrorRecord {
    const hint = dialect === 'cli' && this.commandLineHint ? this.commandLineHint : undefined;
    const message =
      this.message.length <= MAX_MESSAGE ? this.message : `${this.message.slice(0, MAX_MESSAGE - 500)}…${this.message.slice(-400)}`;
    const target = typeof this.targetObject === 'string' ? quoted(this.targetObject, MAX_TARGET) : this.targetObject;
    return {
      Message: message,
      ErrorId: this.errorId,
      Category: this.category,
      TargetObject: target === undefined ? null : target,
      RecommendedAction: [this.recommendedAction, hint].filter((t) => t).join(' ') || null,
      ExitCode: this.exitCode,
    };
  }
}

export interface ErrorRecord {
  Message: string;
  ErrorId: string;
  Category: ErrorCategory;
  TargetObject: unknown;
  RecommendedAction: string | null;
  ExitCode: number;
}

export function usageError(message: string, errorId: string, targetObject?: unknown, recommendedAction?: string): AzsError {
  return new AzsError(message, { errorId, category: 'InvalidArgument', exitCode: ExitCode.Usage, targetObject, recommendedAction });
}

/** What a command or job stopped by a signal (Ctrl-C, SIGTERM) ends with: exit 130. */
export function stoppedBy(what: string, signalName: string): AzsError {
  return new AzsError(`The ${what} was stopped (${signalName}).`, {
    errorId: 'PipelineStopped',
    category: 'OperationStopped',
    exitCode: ExitCode.Interrupted,
  });
}

export function isAzsError(e: unknown): e is AzsError {
  return e instanceof AzsError;
}
