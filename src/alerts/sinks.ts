import { Readable } from 'node:stream';
import { importIntoProgram } from '../providers/child.js';
import type { Alert } from './alert.js';

/**
 * Where alerts go besides Get-BackupAlert: a command (run without a shell, the alert as JSON on
 * its standard input) and a webhook (the alert as JSON in a POST). A sink that fails never fails
 * the job that raised the alert; its failure is returned for the caller to mention.
 */
export interface AlertSinks {
  command?: string[];
  webhookUri?: string;
}

const TIME_LIMIT_MS = 15_000;

/**
 * The command runs as a role's import program does: its output goes nowhere (nothing reads it, and
 * a chatty one must not be killed for it), only the tail of its stderr is kept, and one stuck past
 * the time limit is stopped with everything it started, in a process group of its own.
 */
async function runCommand(argv: string[], body: string): Promise<void> {
  try {
    await importIntoProgram(
      { argv, timeoutMs: TIME_LIMIT_MS, errorPrefix: 'AlertCommand', label: 'program' },
      Readable.from([Buffer.from(body)]),
    );
  } catch (e) {
    throw new Error(`alert command ${argv[0]} failed: ${(e as Error).message}`);
  }
}

/**
 * A webhook's address is often its credential (a token in the path, or user:password@), so only
 * where it goes is shown: https://hooks.example.com/…
 */
export function webhookShown(uri: string): string {
  try {
    const url = new URL(uri);
    return `${url.protocol}//${url.host}/…`;
  } catch {
    return '…';
  }
}

/**
 * POSTs the alert; only a 2xx answer to that POST is delivery. A redirect is not followed: fetch
 * would follow a 301, 302 or 303 with a GET and no body, which an endpoint answers 200 without
 * ever seeing the alert. The answer's body is not read (a huge or endless one cannot hold us).
 */
async function postWebhook(uri: string, body: string): Promise<void> {
  let response: Response;
  try {
    response = await fetch(uri, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(TIME_LIMIT_MS),
    });
  } catch (e) {
    if ((e as Error).name === 'TimeoutError') throw new Error(`alert webhook did not answer within ${TIME_LIMIT_MS / 1000} s`);
    const cause = (e as Error).cause as NodeJS.ErrnoException | undefined;
    throw new Error(`alert webhook could not be reached: ${cause?.message ?? (e as Error).message}`);
  }
  await response.body?.cancel().catch(() => {});
  const answered = `alert webhook answered ${response.status} ${response.statusText.slice(0, 100)}`;
  const location = response.headers.get('location');
  if (response.status >= 300 && response.status < 400 && location !== null) {
    const target = URL.canParse(location, uri) ? new URL(location, uri).href : location;
    throw new Error(
      `${answered}, a redirect to ${webhookShown(target)}, which is not followed: set -AlertWebhookUri to the address it redirects to`,
    );
  }
  if (!response.ok) throw new Error(answered);
}

/** Sends the alert to every configured sink; resolves with the failures, if any. */
export async function notifySinks(alert: Alert, sinks: AlertSinks): Promise<string[]> {
  const body = JSON.stringify(alert);
  const sends: Promise<void>[] = [];
  if (sinks.command?.length) sends.push(runCommand(sinks.command, body));
  if (sinks.webhookUri) sends.push(postWebhook(sinks.webhookUri, body));
  const results = await Promise.allSettled(sends);
  return results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
}
