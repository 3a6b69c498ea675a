import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobItem, BlockBlobClient, ContainerClient } from '@azure/storage-blob';
import { AzsError, type ShareAlertType } from '../errors.js';
import { recyclerOf } from '../memory/recycling-readable.js';
import type { BlobLocation } from './location.js';
import { isTargetPath, splitTargetPath } from './paths.js';
import { readAheadFrom } from './read-ahead.js';
import { tooLarge } from '../io/bounded-read.js';
import { alreadyExists, notFound, shareError, shareFileLimit, SMALL_FILE_MAX_BYTES } from './share-errors.js';
import type { FreeSpace, Target, TargetEntry, TreeEntry, WriteOptions } from './target.js';

/** A storage account key (Base64) or a SAS token (with or without its leading '?'). */
export type BlobCredential = { accountKey: string } | { sasToken: string };

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  tries: number;
  /** Wait before the second attempt; doubled for each later one, with jitter. */
  baseDelayMs: number;
  /** No single wait is longer, whatever a Retry-After header asks. */
  maxDelayMs: number;
  /** A request with no answer by then counts as a dropped connection (an 8 MiB block needs time on a slow link). */
  tryTimeoutMs: number;
}

export const DEFAULT_BLOB_RETRY: RetryPolicy = { tries: 5, baseDelayMs: 250, maxDelayMs: 8000, tryTimeoutMs: 5 * 60_000 };

/** Block blobs are uploaded in blocks of this size, this many at once, and one more filling: 32 MiB of buffers per file being written. */
export const BLOCK_BYTES = 8 * 1024 * 1024;
export const BLOCKS_IN_FLIGHT = 3;
/** Reads: ranged downloads of this size, this many ahead of the reader (8 MiB x 4 took a 500 MiB restore to 198 MiB RSS). */
const READ_PIECE_BYTES = 4 * 1024 * 1024;
const READ_DEPTH = 3;
/** Requests at once for listings' follow-ups, deletes and small reads. */
const PARALLEL_REQUESTS = 8;
/** Times a small file replaced while fetched is measured and fetched again (a rewrite takes one request). */
const SMALL_READ_TRIES = 3;
/** A standard storage account takes up to 5 PiB; the service tells no one how much of it is free. */
const ACCOUNT_CAPACITY_BYTES = 5 * 1024 ** 5;
/** A zero-length blob with this metadata stands for an empty folder (the convention of Data Lake and Storage Explorer). */
const FOLDER_MARKER = 'hdi_isfolder';
/**
 * Metadata naming the write (or copy) that stored a blob: a conditional request tried again after
 * its answer was lost is refused because of its own first attempt, which this tells from another
 * writer's.
 */
const WRITE_ID = 'azswrite';

const NETWORK_ERRORS = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
  'EAI_AGAIN',
  'REQUEST_SEND_ERROR',
  'UND_ERR_SOCKET',
]);

const remediation: Record<ShareAlertType, string> = {
  ShareConnectivity:
    'Check that the storage endpoint is reachable from this machine (name resolution, proxy, firewall allowing HTTPS to the account) ' +
    'and not throttling this account, then run Test-BackupShare.',
  SharePath:
    'Check the container URL: the account and the container must exist (create the container if needed), then run Set-BackupShare with ' +
    'the corrected -Path.',
  ShareAuthentication:
    'Check the storage account key or SAS token: it must belong to this account, be current (keys rotate, SAS tokens expire), and a ' +
    'SAS must allow read, add, create, write, delete and list on the container; then run Set-BackupShare with -StorageAccountKey or ' +
    '-SasToken.',
  ShareCapacity: 'The storage account refused more data: raise its quota or free space in it, then run Test-BackupShare.',
};

interface RestLike {
  statusCode?: number;
  code?: string;
  name?: string;
  message?: string;
  response?: { headers?: { get(name: string): string | undefined } };
}

function restOf(e: unknown): RestLike {
  return typeof e === 'object' && e !== null ? (e as RestLike) : {};
}

const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** Worth another try: throttled, a server or gateway hiccup, a dropped connection, or a request that hung past its time limit. */
function isTransient(e: unknown): boolean {
  const r = restOf(e);
  if (r.statusCode !== undefined) return TRANSIENT_STATUS.has(r.statusCode);
  // An abort is the SDK's per-request time limit unless the caller aborted (call() checks that first).
  return r.name === 'AbortError' || (r.code !== undefined && NETWORK_ERRORS.has(r.code));
}

/** Blobs the storage will not delete yet: under a time-based retention (WORM) policy, a legal hold, or a lease. */
function isRetainedError(e: unknown): boolean {
  const r = restOf(e);
  return (r.statusCode === 409 && /Immutab|LegalHold/i.test(r.code ?? '')) || (r.statusCode === 412 && /^LeaseId/i.test(r.code ?? ''));
}

interface RetentionState {
  leaseStatus?: string;
  legalHold?: boolean;
  immutabilityPolicyExpiresOn?: Date;
}

function retainedNow(p: RetentionState, now: Date): boolean {
  return (
    p.leaseStatus === 'locked' ||
    p.legalHold === true ||
    (p.immutabilityPolicyExpiresOn !== undefined && p.immutabilityPolicyExpiresOn > now)
  );
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * The service refused a read on the condition of the version measured (If-Match): the blob was
 * replaced since (412), or removed (Azure answers 404, Azurite 412).
 */
function changedSinceMeasured(e: unknown): boolean {
  const r = restOf(e instanceof AzsError ? e.cause : e);
  return (r.statusCode === 412 && r.code === 'ConditionNotMet') || (r.statusCode === 404 && r.code === 'BlobNotFound');
}

const isFolderMarker = (metadata: Record<string, string> | undefined) => metadata?.[FOLDER_MARKER] === 'true';

/**
 * False for a blob name with a '.' or '..' segment, which the storage keeps as named but the SDK
 * cannot reach: it puts the name in a URL, and the URL resolves those segments to another blob
 * (`old/../../x` is `x`). Another writer's such blob is never listed, so never deleted or copied.
 */
const addressable = (name: string) => !name.split('/').some((s) => s === '.' || s === '..');

/**
 * The blocks of one blob being written: each staged as soon as it is full, up to BLOCKS_IN_FLIGHT
 * at a time, its buffer reused for a later block once sent. The first failure aborts the others.
 */
class BlockUploads {
  readonly ids: string[] = [];
  readonly abort = new AbortController();
  private readonly writeId = randomBytes(6).toString('hex');
  private readonly inFlight = new Set<Promise<void>>();
  private readonly spare: Buffer[] = [];
  private failure: unknown;

  constructor(private readonly send: (id: string, body: Buffer, length: number, signal: AbortSignal) => Promise<unknown>) {}

  /** A buffer for the next block: one already sent, or a new one. */
  buffer(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafe(BLOCK_BYTES);
  }

  throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** The next block fills while the others upload; it waits for room only once it is full. */
  async stageWhenRoom(buffer: Buffer, length: number): Promise<void> {
    while (this.inFlight.size >= BLOCKS_IN_FLIGHT) await Promise.race(this.inFlight);
    this.throwIfFailed();
    this.stage(buffer, length);
  }

  /** Every block staged, or the first failure. */
  async allSent(): Promise<void> {
    await Promise.all(this.inFlight);
    this.throwIfFailed();
  }

  /** Waits for the requests still out to end, however they end. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.inFlight);
  }

  private stage(buffer: Buffer, length: number): void {
    const id = Buffer.from(`${this.writeId}-${String(this.ids.length).padStart(6, '0')}`).toString('base64');
    this.ids.push(id);
    const body = buffer.subarray(0, length);
    const sent = this.send(id, body, length, this.abort.signal).then(
      () => {
        this.spare.push(buffer);
      },
      (e: unknown) => {
        this.failure ??= e;
        this.abort.abort();
      },
    );
    const tracked = sent.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }
}

/**
 * A prefix in an Azure Blob Storage container (Azure, Azure Stack Hub or Azurite), through the
 * Azure SDK. Blob storage has no folders: a folder is the prefix of the blobs below it, and an
 * empty one a zero-length marker blob. Writes stage blocks and commit the block list, so a blob
 * appears or is replaced in one step, and a write that fails leaves only uncommitted blocks, which
 * no listing shows and the service discards. A rename is a copy and a delete: it is not atomic,
 * which is why `renameCopies` tells the catalog to commit backups by their BackupInfo.xml instead.
 *
 * Transient failures (408, 429, 500, 502, 503, 504, a dropped, refused or hung connection) are retried with bounded
 * exponential backoff; then the failure is a share error like those of the other targets.
 */
export class BlobTarget implements Target {
  readonly location: string;
  readonly endpoint: { host: string; port: number };
  /** Renames copy every blob: commit a folder by writing its marker file last, never by renaming it. */
  readonly renameCopies = true;
  readonly #credential: BlobCredential;
  #client: Promise<ContainerClient> | undefined;
  private readonly retry: RetryPolicy;

  constructor(
    readonly blob: BlobLocation,
    credential: BlobCredential,
    options: { retry?: RetryPolicy } = {},
  ) {
    this.location = blob.display;
    this.endpoint = { host: blob.host.replace(/^\[|\]$/g, ''), port: blob.port };
    this.retry = options.retry ?? DEFAULT_BLOB_RETRY;
    this.#credential = { ...credential };
  }

  /** The SDK's client, loaded on first use: commands on a local folder or SMB share never load the SDK. */
  private client(): Promise<ContainerClient> {
    this.#client ??= import('@azure/storage-blob').then(
      ({ AnonymousCredential, ContainerClient, StorageSharedKeyCredential, newPipeline }) => {
        // The SDK's own retries are off: ours below also retry 429 and dropped connections, and know when to stop.
        const pipelineOptions = { retryOptions: { maxTries: 1, tryTimeoutInMs: this.retry.tryTimeoutMs } };
        const containerUrl = `${this.blob.accountUrl}/${encodeURIComponent(this.blob.container)}`;
        const credential = this.#credential;
        if ('accountKey' in credential) {
          return new ContainerClient(
            containerUrl,
            newPipeline(new StorageSharedKeyCredential(this.blob.accountName, credential.accountKey), pipelineOptions),
          );
        }
        const sas = credential.sasToken.trim().replace(/^\?/, '');
        return new ContainerClient(`${containerUrl}?${sas}`, newPipeline(new AnonymousCredential(), pipelineOptions));
      },
    );
    return this.#client;
  }

  // ---- paths ---------------------------------------------------------------------------------

  /** The blob name of a target path ('' is the prefix itself). */
  private name(p: string, allowRoot = false): string {
    const rel = splitTargetPath(p, { allowRoot }).join('/');
    return [this.blob.prefix, rel].filter((s) => s !== '').join('/');
  }

  /** The listing prefix of everything below the folder at `p`. */
  private below(p: string): string {
    const n = this.name(p, true);
    return n === '' ? '' : `${n}/`;
  }

  // ---- errors and retries --------------------------------------------------------------------

  private classify(e: unknown, p: string, tries = 1): unknown {
    if (e instanceof AzsError) return e;
    const r = restOf(e);
    const where = p === '' ? this.location : `'${p}' on ${this.location}`;
    const opts = (alertType: ShareAlertType, extra: { errorId?: string; category?: AzsError['category'] } = {}) => ({
      targetObject: p === '' ? this.location : p,
      cause: e,
      recommendedAction: remediation[alertType],
      ...extra,
    });
    const code = r.code ?? '';
    if (r.statusCode === 404 && (code === 'ContainerNotFound' || code === 'ResourceNotFound' || code === '')) {
      return shareError('SharePath', `The container ${this.location} does not exist (${code || 'HTTP 404'}).`, opts('SharePath'));
    }
    if (r.statusCode === 403 || r.statusCode === 401) {
      const permission = /^Authorization(PermissionMismatch|ResourceTypeMismatch|ServiceMismatch)$/.test(code);
      return shareError(
        'ShareAuthentication',
        permission
          ? `The credential for ${this.location} may not do this to ${where} (${code}): the SAS token lacks a permission.`
          : `The storage account refused the credential for ${this.location} (${code || `HTTP ${r.statusCode}`}): the key or SAS token is wrong, expired or not yet valid.`,
        opts('ShareAuthentication', permission ? { category: 'PermissionDenied' } : {}),
      );
    }
    if (r.statusCode === 409 && /Quota|CapacityExceeded|AccountLimit/i.test(code)) {
      return shareError('ShareCapacity', `The storage account behind ${this.location} refused the data (${code}).`, opts('ShareCapacity'));
    }
    if (isTransient(e)) {
      const busy = r.statusCode !== undefined;
      return shareError(
        'ShareConnectivity',
        busy
          ? `The storage account behind ${this.location} kept answering HTTP ${r.statusCode} (${code || 'busy'}) to ${tries} tries for ${where}.`
          : `The storage endpoint of ${this.location} could not be reached (${code || 'no answer in time'}) in ${tries} tries: ${r.message ?? ''}`.trim(),
        opts('ShareConnectivity', busy ? { errorId: 'ShareBusy', category: 'ResourceBusy' } : {}),
      );
    }
    if (r.statusCode === undefined && (code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH')) {
      return shareError(
        'ShareConnectivity',
        `The storage endpoint of ${this.location} could not be reached (${code}).`,
        opts('ShareConnectivity'),
      );
    }
    return e;
  }

  /** Runs one request, again after a bounded backoff while it fails transiently; then classifies the failure. */
  private async call<T>(
    p: string,
    run: (container: ContainerClient, abortSignal: AbortSignal) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const container = await this.client();
    for (let attempt = 1; ; attempt++) {
      // The SDK's own time limit only asks the server to give up; a connection that hangs is ended here.
      const timeout = AbortSignal.timeout(this.retry.tryTimeoutMs);
      try {
        return await run(container, signal ? AbortSignal.any([signal, timeout]) : timeout);
      } catch (e) {
        if (signal?.aborted || !isTransient(e) || attempt >= this.retry.tries) throw this.classify(e, p, attempt);
        const asked = Number(restOf(e).response?.headers?.get('retry-after'));
        const backoff = this.retry.baseDelayMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
        await sleep(Math.min(this.retry.maxDelayMs, Number.isFinite(asked) && asked > 0 ? asked * 1000 : backoff), signal);
      }
    }
  }

  /**
   * The container must exist: a missing one is a wrong path, never something to create. Asked by
   * listing one blob, which a container SAS may do (reading the container's properties it may not).
   */
  private async requireContainer(): Promise<void> {
    await this.call('', async (c, abortSignal) => {
      for await (const _page of c.listBlobsFlat({ prefix: this.below(''), abortSignal }).byPage({ maxPageSize: 1 })) return;
    });
  }

  /** Blobs the storage keeps as they are for now, refused `deleted` (prune reports them) or `replaced`. */
  private retained(paths: string[], refused: 'deleted' | 'replaced' = 'deleted', cause?: unknown): AzsError {
    return new AzsError(
      `The storage keeps ${paths.length === 1 ? `'${paths[0]}'` : `${paths.length} blobs`} on ${this.location} from ${refused === 'deleted' ? 'deletion' : 'being replaced'} for now (an immutability policy, legal hold or lease).`,
      {
        errorId: 'ShareObjectRetained',
        category: 'PermissionDenied',
        targetObject: paths,
        cause,
        recommendedAction:
          refused === 'deleted'
            ? 'Nothing is wrong: the blobs can be deleted once their retention ends or the hold or lease is released. Invoke-BackupPrune ' +
              'removes them then.'
            : 'It stays as it is until its retention ends or the hold or lease is released: run the command again then.',
      },
    );
  }

  // ---- the Target contract -------------------------------------------------------------------

  async write(p: string, data: Readable, options: WriteOptions = {}): Promise<{ bytes: number }> {
    let name: string;
    let blob: BlockBlobClient;
    let conditions: { ifMatch: string } | undefined;
    const metadata = { [WRITE_ID]: randomBytes(8).toString('hex') };
    try {
      name = this.name(p);
      blob = (await this.client()).getBlockBlobClient(name);
      if (options.replaceOnly) {
        // Only the blob that is there is replaced: stored on the condition of its ETag, so the
        // service refuses (412) once it is deleted, however late. (If-Match: * would do on Azure
        // but not on Azurite, which takes it for a blob that is not there.)
        const etag = (await this.properties(name, p))?.etag;
        if (etag === undefined) throw notFound(this.location, p);
        conditions = { ifMatch: etag };
      }
    } catch (e) {
      data.destroy();
      throw e;
    }
    const recycle = recyclerOf(data);
    const blocks = new BlockUploads((id, body, length, signal) =>
      this.call(p, (_c, abortSignal) => blob.stageBlock(id, body, length, { abortSignal }), signal),
    );
    let current: Buffer | undefined;
    let filled = 0;
    let bytes = 0;

    try {
      for await (const chunk of data) {
        const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
        let at = 0;
        while (at < c.length) {
          blocks.throwIfFailed();
          if (!current) {
            current = blocks.buffer();
            filled = 0;
          }
          const n = c.copy(current, filled, at);
          filled += n;
          at += n;
          if (filled === BLOCK_BYTES) {
            await blocks.stageWhenRoom(current, filled);
            current = undefined;
          }
        }
        bytes += c.length;
        // Copied into a block: the producer may have it back.
        recycle?.(c);
      }
      if (blocks.ids.length === 0) {
        // Small enough for one request: Put Blob stores it (and replaces the old one) at once.
        const body = current ? current.subarray(0, filled) : Buffer.alloc(0);
        await this.call(p, (_c, abortSignal) => blob.upload(body, body.length, { abortSignal, conditions, metadata }));
        return { bytes };
      }
      if (current && filled > 0) await blocks.stageWhenRoom(current, filled);
      await blocks.allSent();
      await this.call(p, (_c, abortSignal) => blob.commitBlockList(blocks.ids, { abortSignal, conditions, metadata }));
      return { bytes };
    } catch (e) {
      blocks.abort.abort();
      data.destroy();
      await blocks.settled();
      // The blocks staged so far stay uncommitted: no listing shows them, and the service drops them.
      // A blob under a lease is refused with a 412 too (LeaseIdMissing): held, not gone.
      if (isRetainedError(e)) throw this.retained([p], 'replaced', e);
      if (conditions && restOf(e).statusCode === 412) {
        // The ETag changed: by this very write, tried again after its answer was lost, or because
        // the blob was removed (or replaced) meanwhile.
        if (await this.stored(name, p, metadata[WRITE_ID])) return { bytes };
        throw notFound(this.location, p);
      }
      throw this.classify(e, p);
    }
  }

  async read(p: string): Promise<Readable> {
    const name = this.name(p);
    const blob = (await this.client()).getBlockBlobClient(name);
    const props = await this.properties(name, p);
    if (!props || isFolderMarker(props.metadata)) throw notFound(this.location, p);
    const size = props.contentLength ?? 0;
    // Every range comes from the version that was measured: a blob replaced meanwhile fails the read, never mixes.
    const conditions = { ifMatch: props.etag };
    return readAheadFrom(
      {
        read: (buffer, position) =>
          this.call(p, (_c, abortSignal) =>
            blob.downloadToBuffer(buffer, position, buffer.length, { conditions, blockSize: buffer.length, concurrency: 1, abortSignal }),
          ).catch(async (e: unknown) => {
            throw changedSinceMeasured(e) ? await this.changedWhileRead(name, p, e) : e;
          }),
        close: async () => {},
      },
      size,
      { pieceBytes: READ_PIECE_BYTES, depth: READ_DEPTH },
    );
  }

  /** The blob's properties, or undefined when there is none by that name (a missing container is SharePath). */
  private async properties(name: string, p: string) {
    try {
      return await this.call(p, (c, abortSignal) => c.getBlockBlobClient(name).getProperties({ abortSignal }));
    } catch (e) {
      const cause = restOf(e instanceof AzsError ? e.cause : e);
      if (cause.statusCode !== 404) throw e;
      // A HEAD answer has no body, and not every server names the error: check the container is there.
      if (cause.code !== 'BlobNotFound') await this.requireContainer();
      return undefined;
    }
  }

  private async listFlat(p: string, retention = false): Promise<BlobItem[]> {
    const prefix = this.below(p);
    return this.call(p, async (c, abortSignal) => {
      const items: BlobItem[] = [];
      const options = {
        prefix,
        abortSignal,
        includeMetadata: true,
        ...(retention ? { includeImmutabilityPolicy: true, includeLegalHold: true } : {}),
      };
      for await (const item of c.listBlobsFlat(options)) if (addressable(item.name)) items.push(item);
      return items;
    });
  }

  async list(p: string): Promise<TargetEntry[]> {
    const prefix = this.below(p);
    return this.call(p, async (c, abortSignal) => {
      const entries = new Map<string, TargetEntry>();
      for await (const item of c.listBlobsByHierarchy('/', { prefix, abortSignal, includeMetadata: true })) {
        const name = item.name.slice(prefix.length).replace(/\/$/, '');
        // A name no target path holds ('' from a name with '//' or ending in '/', a '\\') is not ours.
        if (!isTargetPath(name)) continue;
        // A plain blob named like a folder with blobs below it is no file there: the folder wins (see listTree).
        const isFolder = entries.get(name)?.isDirectory === true;
        if (item.kind === 'prefix') {
          if (!isFolder) entries.set(name, { name, isDirectory: true, size: 0, mtime: new Date(0) });
        } else if (isFolderMarker(item.metadata)) {
          entries.set(name, { name, isDirectory: true, size: 0, mtime: item.properties.lastModified });
        } else if (!isFolder) {
          entries.set(name, { name, isDirectory: false, size: item.properties.contentLength ?? 0, mtime: item.properties.lastModified });
        }
      }
      return [...entries.values()];
    });
  }

  async listTree(p: string): Promise<TreeEntry[]> {
    const prefix = this.below(p);
    const entries = new Map<string, TreeEntry>();
    // Blob storage lets a plain blob share its name with a folder (blobs below that name): a stamp
    // folder has no marker, so anyone allowed to create blobs may add one. The folder wins, or the
    // backups below it would vanish from the listing and their packs be collected as orphans.
    const folder = (path: string, mtime: Date) => {
      const seen = entries.get(path);
      if (!seen?.isDirectory) entries.set(path, { path, name: path.slice(path.lastIndexOf('/') + 1), isDirectory: true, size: 0, mtime });
      else if (seen.mtime < mtime) seen.mtime = mtime;
    };
    for (const item of await this.listFlat(p)) {
      const path = item.name.slice(prefix.length);
      // Blob names may end in '/' (a tool's folder placeholder) or hold '//': no target path can name
      // them, so they are not listed (a folder's deletion still removes them with it).
      if (!isTargetPath(path)) continue;
      const mtime = item.properties.lastModified;
      const parts = path.split('/');
      for (let i = 1; i < parts.length; i++) folder(parts.slice(0, i).join('/'), mtime);
      if (isFolderMarker(item.metadata)) folder(path, mtime);
      else if (!entries.get(path)?.isDirectory) {
        entries.set(path, { path, name: parts[parts.length - 1]!, isDirectory: false, size: item.properties.contentLength ?? 0, mtime });
      }
    }
    return [...entries.values()];
  }

  async readSmallFiles(paths: readonly string[], maxBytes = SMALL_FILE_MAX_BYTES): Promise<(Buffer | AzsError | undefined)[]> {
    const names = paths.map((p) => this.name(p));
    return mapLimit(names, PARALLEL_REQUESTS, async (name, i): Promise<Buffer | AzsError | undefined> => {
      const p = paths[i]!;
      for (let attempt = 1; ; attempt++) {
        const props = await this.properties(name, p);
        if (!props || isFolderMarker(props.metadata)) return undefined;
        // Refused for itself, unread: the blob's length is known before a byte is fetched.
        if ((props.contentLength ?? 0) > maxBytes) return tooLarge(p, shareFileLimit(this.location, maxBytes), props.contentLength);
        try {
          return await this.call(p, (c, abortSignal) =>
            c.getBlockBlobClient(name).downloadToBuffer(0, undefined, { conditions: { ifMatch: props.etag }, abortSignal }),
          );
        } catch (e) {
          // Replaced (another machine's rewrite, which is whole) or removed since it was measured:
          // measured again, so the caller gets the old file, the new one or none, as from a folder.
          if (!changedSinceMeasured(e)) throw e;
          if (attempt >= SMALL_READ_TRIES) throw await this.changedWhileRead(name, p, e);
        }
      }
    });
  }

  /**
   * Why a read on the condition of the measured version was refused: the blob is gone
   * (TargetObjectNotFound, as for a blob missing from the start), or was replaced meanwhile.
   */
  private async changedWhileRead(name: string, p: string, cause: unknown): Promise<AzsError> {
    // null: not known (the service did not answer this either), which is told as a replacement.
    const now = await this.properties(name, p).catch(() => null);
    if (now === undefined || (now && isFolderMarker(now.metadata))) return notFound(this.location, p);
    return new AzsError(`'${p}' on ${this.location} was replaced while it was being read.`, {
      errorId: 'ShareObjectChanged',
      category: 'InvalidOperation',
      targetObject: p,
      retryable: true,
      cause,
      recommendedAction:
        'Another machine using this location rewrote it (Update-BackupEncryption rewrites BackupInfo.xml): run the command again once ' +
        'that has finished.',
    });
  }

  async stat(p: string): Promise<TargetEntry | undefined> {
    const name = this.name(p, true);
    if (p === '') {
      await this.requireContainer();
      return { name: '', isDirectory: true, size: 0, mtime: new Date(0) };
    }
    const leaf = name.slice(name.lastIndexOf('/') + 1);
    const props = await this.properties(name, p);
    if (props) {
      const folder = isFolderMarker(props.metadata);
      return { name: leaf, isDirectory: folder, size: folder ? 0 : (props.contentLength ?? 0), mtime: props.lastModified ?? new Date(0) };
    }
    // No blob by that name: a folder if any blob lies below it (listing also fails on a missing container).
    const below = await this.call(p, async (c, abortSignal) => {
      for await (const page of c.listBlobsFlat({ prefix: `${name}/`, abortSignal }).byPage({ maxPageSize: 1 })) {
        const first = page.segment.blobItems[0];
        return first ? first.properties.lastModified : undefined;
      }
      return undefined;
    });
    return below ? { name: leaf, isDirectory: true, size: 0, mtime: below } : undefined;
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.name(from);
    const dst = this.name(to);
    const source = await this.stat(from);
    if (!source) throw notFound(this.location, from);
    if (await this.stat(to)) throw alreadyExists(this.location, to);
    // Each copy keeps its blob's metadata (a folder's marker stays one), with a write id of its own.
    type Move = [from: string, to: string, metadata: Record<string, string>];
    const moves: Move[] = source.isDirectory
      ? (await this.listFlat(from)).map((item): Move => [item.name, `${dst}/${item.name.slice(src.length + 1)}`, item.metadata ?? {}])
      : [[src, dst, {}]];
    // The folder's own marker, if it has one, moves too.
    const marker = source.isDirectory ? (await this.properties(src, from))?.metadata : undefined;
    if (isFolderMarker(marker)) moves.push([src, dst, marker!]);
    await mapLimit(moves, PARALLEL_REQUESTS, async ([a, b, kept]) => {
      const metadata = { ...kept, [WRITE_ID]: randomBytes(8).toString('hex') };
      // Only onto a name nobody took since the check above: another writer's rename to the same
      // name (two first backups creating the repository's config.xml) must fail, never be replaced.
      const poller = await this.call(to, (c, abortSignal) =>
        c.getBlockBlobClient(b).beginCopyFromURL(c.getBlockBlobClient(a).url, { abortSignal, metadata, conditions: { ifNoneMatch: '*' } }),
      ).catch(async (e: unknown) => {
        const { statusCode } = restOf(e);
        if (statusCode !== 409 && statusCode !== 412) throw e;
        // Taken by this very copy, tried again after its answer was lost: done once the copy is.
        if (await this.stored(b, to, metadata[WRITE_ID], true)) return undefined;
        throw alreadyExists(this.location, to);
      });
      // A copy the service finishes later (Azure may) is watched here, not by the SDK's poller,
      // which takes no abort signal: each look is a request under the retry policy.
      if (poller && !poller.isDone()) {
        poller.stopPolling();
        if (!(await this.stored(b, to, metadata[WRITE_ID], true))) throw alreadyExists(this.location, to);
      }
    });
    await this.deleteNames(
      from,
      moves.map(([a]) => a),
    );
  }

  /**
   * Whether the blob holds the write (or copy) of this write id, as a request tried again after its
   * answer was lost finds it; waits for such a copy to finish, and fails if it did not.
   */
  private async stored(name: string, p: string, writeId: string, copy = false): Promise<boolean> {
    const deadline = Date.now() + this.retry.tryTimeoutMs;
    for (let wait = this.retry.baseDelayMs; ; wait = Math.min(this.retry.maxDelayMs, wait * 2)) {
      const props = await this.properties(name, p);
      if (props?.metadata?.[WRITE_ID] !== writeId) return false;
      const status = copy ? props.copyStatus : undefined;
      if (status === undefined || status === 'success') return true;
      if (status !== 'pending' || Date.now() > deadline) {
        throw new AzsError(
          `The storage's copy to '${p}' on ${this.location} ended ${status === 'pending' ? 'unfinished in time' : status}.`,
          {
            errorId: 'ShareOperationFailed',
            category: 'WriteError',
            targetObject: p,
            recommendedAction: 'Check the storage account with Test-BackupShare, then run the command again.',
          },
        );
      }
      await sleep(wait);
    }
  }

  async delete(p: string): Promise<void> {
    const name = this.name(p);
    const items: { name: string; state: RetentionState }[] = (await this.listFlat(p, true)).map((item) => ({
      name: item.name,
      state: item.properties,
    }));
    const self = await this.properties(name, p);
    if (self) items.push({ name, state: self });
    const now = new Date();
    const kept = items.filter((item) => retainedNow(item.state, now));
    // Nothing goes while anything in it must stay: a backup is removed whole or not at all.
    if (kept.length > 0) throw this.retained(kept.map((item) => item.name.slice(this.below('').length)));
    await this.deleteNames(
      p,
      items.map((item) => item.name),
    );
  }

  private async deleteNames(p: string, names: string[]): Promise<void> {
    const refused: string[] = [];
    await mapLimit(names, PARALLEL_REQUESTS, async (name) => {
      try {
        await this.call(p, (c, abortSignal) => c.getBlockBlobClient(name).deleteIfExists({ deleteSnapshots: 'include', abortSignal }));
      } catch (e) {
        if (!isRetainedError(restOf(e instanceof AzsError ? e.cause : e)) && !isRetainedError(e)) throw e;
        refused.push(name.slice(this.below('').length));
      }
    });
    if (refused.length > 0) throw this.retained(refused);
  }

  async mkdir(p: string): Promise<void> {
    const name = this.name(p);
    await this.requireContainer();
    if (await this.stat(p)) return;
    await this.call(p, (c, abortSignal) =>
      c.getBlockBlobClient(name).upload(Buffer.alloc(0), 0, { metadata: { [FOLDER_MARKER]: 'true' }, abortSignal }),
    );
  }

  async freeSpace(): Promise<FreeSpace & { known: false }> {
    await this.requireContainer();
    return { available: ACCOUNT_CAPACITY_BYTES, total: ACCOUNT_CAPACITY_BYTES, known: false };
  }
}
