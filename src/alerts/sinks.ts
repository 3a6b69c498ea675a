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

async function postWebhook(uri: string, body: string): Promise<void> {
  const response = await fetch(uri, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(TIME_LIMIT_MS),
  });
  if (!response.ok) throw new Error(`alert webhook answered ${response.status} ${response.statusText}`);
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
