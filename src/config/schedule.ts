import type { StoredConfig } from './store.js';

/**
 * How far after now a recorded time may be and still be this clock's own small step back (an NTP
 * correction of seconds); beyond it, the clock was wrong when the time was recorded, or is now.
 */
export const CLOCK_STEP_MS = 10 * 60_000;

/**
 * When the last successful backup was, as the schedule counts it (ms since the epoch): none when
 * it is recorded later than now beyond a step of the clock. Such a time says nothing of when
 * backups last succeeded, and counting from it would take no backup until the clock caught up.
 */
export function lastSuccessCounted(config: StoredConfig, now: Date): number | undefined {
  if (config.lastSuccessfulBackupTime === undefined) return undefined;
  const last = Date.parse(config.lastSuccessfulBackupTime);
  return last - now.getTime() > CLOCK_STEP_MS ? undefined : last;
}
