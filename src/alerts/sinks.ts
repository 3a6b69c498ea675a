import { execFile } from 'node:child_process';
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

function runCommand(argv: string[], body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0]!, argv.slice(1), { timeout: TIME_LIMIT_MS, killSignal: 'SIGKILL' }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`alert command ${argv[0]} failed: ${stderr.trim().slice(-500) || error.message}`));
      else resolve();
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(body);
  });
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
