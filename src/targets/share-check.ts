import { randomBytes } from 'node:crypto';
import dns from 'node:dns/promises';
import net from 'node:net';
import { Readable } from 'node:stream';
import { AzsError, type ShareAlertType } from '../errors.js';
import { shareError } from './share-errors.js';
import type { Target } from './target.js';

export type ShareCheckStepName = 'Resolve' | 'Connect' | 'Authenticate' | 'Open' | 'Write' | 'Read' | 'Delete' | 'Capacity';

export interface ShareCheckStep {
  Name: ShareCheckStepName;
  Succeeded: boolean;
  Message: string;
}

export interface ShareCheckResult {
  Path: string;
  Reachable: boolean;
  Authenticated: boolean;
  Writable: boolean;
  /** Bytes free, or null when the check stopped before measuring or the storage does not tell (a blob container). */
  AvailableCapacity: number | null;
  RequiredCapacity: number;
  HasEnoughCapacity: boolean;
  /** The steps run, in order; the last one failed when Error is set. */
  Steps: ShareCheckStep[];
  /** The alert the failure raises (SPEC 7), or null when it passed or the failure is not a share problem. */
  AlertType: ShareAlertType | null;
  /** The classified failure, or null when every step passed. */
  Error: AzsError | null;
}

export interface ShareCheckOptions {
  requiredBytes: number;
  connectTimeoutMs?: number;
}

/** Where a network target connects; targets without one (local folders) skip Resolve and Connect. */
function endpointOf(target: Target): { host: string; port: number } | undefined {
  const e = (target as { endpoint?: unknown }).endpoint;
  if (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { host?: unknown }).host === 'string' &&
    typeof (e as { port?: unknown }).port === 'number'
  ) {
    return e as { host: string; port: number };
  }
  return undefined;
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const fail = (e: Error) => {
      socket.destroy();
      reject(e);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no answer within ${timeoutMs} ms`)));
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.end();
      resolve();
    });
  });
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(parts);
}

/** One run of the check: what it looks at, and the result its steps fill in. */
interface Check {
  target: Target;
  opts: ShareCheckOptions;
  result: ShareCheckResult;
  /** The server of a network target, without the brackets of an IPv6 address; undefined for a local folder. */
  endpoint: { host: string; port: number } | undefined;
  host: string | undefined;
}

function emptyResult(target: Target, opts: ShareCheckOptions): ShareCheckResult {
  return {
    Path: target.location,
    Reachable: false,
    Authenticated: false,
    Writable: false,
    AvailableCapacity: null,
    RequiredCapacity: opts.requiredBytes,
    HasEnoughCapacity: false,
    Steps: [],
    AlertType: null,
    Error: null,
  };
}

/**
 * Runs one step and records it; false when it failed with an AzsError (the first such error is the
 * check's Error). Any other error is a defect and is rethrown.
 */
async function step(check: Check, name: ShareCheckStepName, run: () => Promise<string>): Promise<boolean> {
  const { result } = check;
  try {
    const message = await run();
    result.Steps.push({ Name: name, Succeeded: true, Message: message });
    return true;
  } catch (e) {
    if (!(e instanceof AzsError)) throw e;
    result.Steps.push({ Name: name, Succeeded: false, Message: e.message });
    // The first failure is the cause; a later cleanup failure must not hide it.
    if (result.Error === null) {
      result.Error = e;
      result.AlertType = e.alertType ?? null;
    }
    return false;
  }
}

async function resolveServer({ target, endpoint, host }: Check): Promise<string> {
  if (!endpoint || !host) return 'A local folder: nothing to resolve.';
  try {
    const { address } = await dns.lookup(host);
    return `${host} resolves to ${address}.`;
  } catch (e) {
    throw shareError('ShareConnectivity', `The server name '${host}' does not resolve (${(e as { code?: string }).code ?? String(e)}).`, {
      targetObject: target.location,
      cause: e,
    });
  }
}

async function connectToServer({ target, opts, endpoint, host }: Check): Promise<string> {
  if (!endpoint || !host) return 'A local folder: nothing to connect to.';
  const timeout = opts.connectTimeoutMs ?? 5000;
  try {
    await tcpConnect(host, endpoint.port, timeout);
  } catch (e) {
    throw shareError('ShareConnectivity', `Cannot connect to ${host} on TCP port ${endpoint.port}: ${(e as Error).message}.`, {
      targetObject: target.location,
      cause: e,
    });
  }
  return `Connected to ${host}:${endpoint.port}.`;
}

/**
 * Authenticate, then Open. Signing in and opening the folder are one request to the share (listing
 * its root); which of the two failed is told by the error: a share or folder that does not exist is
 * not a refused account.
 */
async function authenticateAndOpen(check: Check): Promise<boolean> {
  const { target, endpoint, host } = check;
  let listing: Promise<number> | undefined;
  const authenticated = await step(check, 'Authenticate', async () => {
    if (!endpoint) return 'A local folder: no account to authenticate.';
    listing = target.list('').then((entries) => entries.length);
    try {
      await listing;
    } catch (e) {
      if ((e as AzsError).alertType !== 'SharePath') throw e;
    }
    return `Signed in to ${host}.`;
  });
  if (!authenticated) return false;
  check.result.Authenticated = true;

  return step(check, 'Open', async () => {
    const entries = listing ? await listing : (await target.list('')).length;
    return `Opened ${target.location} (${entries} entries at the root).`;
  });
}

async function readProbeBack(target: Target, probe: string, payload: Buffer): Promise<string> {
  const back = await collect(await target.read(probe));
  if (!back.equals(payload)) {
    throw new AzsError(
      `The probe file read back from ${target.location} differs from what was written (${back.length} of ${payload.length} bytes).`,
      {
        errorId: 'ShareProbeMismatch',
        category: 'InvalidData',
        exitCode: 1,
        targetObject: target.location,
        recommendedAction: 'The share corrupts or truncates data: check the file server and its storage before trusting backups to it.',
      },
    );
  }
  return 'Read the probe back unchanged.';
}

/** Write, Read and Delete a probe at the root (outside MASBackup); true when all three passed. */
async function probeWriteReadDelete(check: Check): Promise<boolean> {
  const { target } = check;
  const probe = `.azsbackup-probe-${randomBytes(8).toString('hex')}`;
  const payload = randomBytes(4096);
  let written = false;
  const wrote = await step(check, 'Write', async () => {
    await target.write(probe, Readable.from([payload]));
    written = true;
    return `Wrote the probe file ${probe}.`;
  });
  const readOk = wrote && (await step(check, 'Read', () => readProbeBack(target, probe, payload)));
  // The probe is removed even when reading it failed, so a failed check leaves nothing behind.
  if (written) {
    const deleted = await step(check, 'Delete', async () => {
      await target.delete(probe);
      return 'Deleted the probe file.';
    });
    if (!deleted) return false;
  }
  return readOk;
}

async function compareCapacity({ target, opts, result }: Check): Promise<string> {
  const space = await target.freeSpace();
  if (space.known === false) {
    // A blob account does not say how much it can still take; the figure would only be its limit.
    result.HasEnoughCapacity = true;
    return `The storage does not report its free space, so AvailableCapacity is not known (an account takes up to ${formatBytes(space.total)}); ${formatBytes(opts.requiredBytes)} needed.`;
  }
  result.AvailableCapacity = space.available;
  result.HasEnoughCapacity = space.available >= opts.requiredBytes;
  if (!result.HasEnoughCapacity) {
    throw shareError(
      'ShareCapacity',
      `The share ${target.location} has ${formatBytes(space.available)} free, and the retained backups need ${formatBytes(opts.requiredBytes)}.`,
      { targetObject: target.location },
    );
  }
  return `${formatBytes(space.available)} free of ${formatBytes(space.total)}; ${formatBytes(opts.requiredBytes)} needed.`;
}

/**
 * Test-BackupShare's checks, in order: resolve the server, connect to it, authenticate (list the
 * root), write, read back and delete a probe at the root (outside MASBackup), then compare free
 * space with `requiredBytes`.
 *
 * It never throws for a share problem: the first failing step stops the check and the result says
 * which step, with the classified AzsError in `Error` and its `AlertType`, so Test-BackupShare can
 * show the whole picture while Set-BackupShare and the engine throw `Error` (see `assertShareUsable`).
 * Errors that are not AzsError are defects and are rethrown.
 */
export async function checkShare(target: Target, opts: ShareCheckOptions): Promise<ShareCheckResult> {
  const endpoint = endpointOf(target);
  const check: Check = { target, opts, result: emptyResult(target, opts), endpoint, host: endpoint?.host.replace(/^\[|\]$/g, '') };
  const { result } = check;

  if (!(await step(check, 'Resolve', () => resolveServer(check)))) return result;
  if (!(await step(check, 'Connect', () => connectToServer(check)))) return result;
  result.Reachable = true;
  if (!(await authenticateAndOpen(check))) return result;
  if (!(await probeWriteReadDelete(check))) return result;
  result.Writable = true;
  await step(check, 'Capacity', () => compareCapacity(check));
  return result;
}

/** Throws the check's error, for callers (Set-BackupShare, the engine) that must stop on it. */
export function assertShareUsable(result: ShareCheckResult): void {
  if (result.Error) throw result.Error;
}

function formatBytes(n: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]}`;
}
