import { AzsError, ExitCode, isAzsError, type ErrorCategory } from '../errors.js';

/**
 * A provider's file-system failure as an AzsError: a full destination (or quota) is always DestinationFull
 * (exit 14, whatever the provider), anything else takes the provider's own ErrorId and advice.
 */
export function providerFsError(
  e: unknown,
  opts: {
    message: string;
    errorId: string;
    target: string;
    recommendedAction: string;
    category?: ErrorCategory;
    /** Extra error codes that mean "no space" (SQLITE_FULL). */
    fullCodes?: string[];
  },
): AzsError {
  if (isAzsError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  const category = opts.category ?? 'WriteError';
  const noSpace =
    err?.code === 'ENOSPC' || err?.code === 'EDQUOT' || (err?.code !== undefined && (opts.fullCodes ?? []).includes(err.code));
  return new AzsError(`${opts.message}: ${err?.message ?? String(e)}`, {
    errorId: noSpace ? 'DestinationFull' : opts.errorId,
    category: noSpace ? 'QuotaExceeded' : category,
    exitCode: noSpace ? ExitCode.Capacity : category === 'InvalidData' ? ExitCode.Integrity : ExitCode.Failure,
    targetObject: opts.target,
    cause: e,
    recommendedAction: noSpace
      ? "Free space on the destination file system (or raise the account's disk quota) and run the job again."
      : opts.recommendedAction,
  });
}
