import { rmSync } from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AzsError, ExitCode, isAzsError } from '../errors.js';
import { ensurePrivateDir } from '../process/private-dir.js';
import { ByteQueue } from '../pipeline/byte-queue.js';
import { reportingWrites } from '../memory/reporting-writes.js';
import { parseUserName, type ShareLocation } from './location.js';
import { startSmbClient, stdoutLinesPrompt, type SmbClient, type SmbClientResult } from './smb-client.js';
import { partialNameFor, splitTargetPath } from './paths.js';
import { alreadyExists, isRefusedFile, notFound, shareError, shareFileLimit, SMALL_FILE_MAX_BYTES } from './share-errors.js';
import { readFileBounded } from '../io/bounded-read.js';
import { recycleThrough, recyclerOf } from '../memory/recycling-readable.js';
import type { FreeSpace, Target, TargetEntry, TreeEntry, WriteOptions } from './target.js';

export type SmbLocation = Extract<ShareLocation, { kind: 'smb' }>;
export interface SmbCredential {
  userName: string;
  password: string;
}

/** One NT_STATUS failure smbclient reported for a command that did connect. */
interface Failure {
  status: string;
  line: string;
}

/** One smbclient run as it ended: its result, and the failure of feeding its input, if any. */
interface ClientRun {
  result: SmbClientResult;
  inputError: unknown;
  /** smbclient closed its input before all of it was written (a closed pipe). */
  stoppedReading: boolean;
  /** Its input was handed to it: a run with a stream that never was can be run again. */
  fed: boolean;
}

/** What runClient is asked to do besides running smbclient's commands. */
interface RunIo {
  stdin?: (sub: SmbClient) => Promise<void>;
  stdout?: (sub: SmbClient) => void;
  /** No file smbclient writes here may grow past this: see readBatch. */
  maxLocalFileBytes?: number;
  /** The commands begin with `pwd`: feed stdin only once its line shows (see run()). */
  marked?: boolean;
}

// Characters a Windows share refuses in a name, plus what smbclient's -c parser treats specially
// (';' separates commands, '"' quotes).
const BAD_SMB_NAME = /[\\:*?"<>|;\x00-\x1f]/;
/**
 * A name another writer gave an entry that smbclient could not be told (';' is legal on SMB):
 * listed, it would be handed back to segments(), which refuses it, and stop whatever walks the
 * folder (prune, at every run). It is not listed, as if it were not there; a folder deleted
 * (deltree) takes it along.
 */
const sayable = (name: string) => !BAD_SMB_NAME.test(name);
const NOT_FOUND = new Set([
  'NT_STATUS_FILE_IS_A_DIRECTORY',
  'NT_STATUS_OBJECT_NAME_NOT_FOUND',
  'NT_STATUS_OBJECT_PATH_NOT_FOUND',
  'NT_STATUS_NO_SUCH_FILE',
  'NT_STATUS_NOT_FOUND',
]);
const AUTH_REFUSED =
  /LOGON_FAILURE|ACCESS_DENIED|WRONG_PASSWORD|ACCOUNT_(DISABLED|LOCKED_OUT|EXPIRED|RESTRICTION)|PASSWORD_(EXPIRED|MUST_CHANGE)|NO_SUCH_USER|INVALID_LOGON_HOURS|INVALID_WORKSTATION|LOGON_TYPE_NOT_GRANTED/;
const CAPACITY = /DISK_FULL|QUOTA_EXCEEDED/;
const CONNECTIVITY =
  /CONNECTION_(REFUSED|RESET|DISCONNECTED|ABORTED)|HOST_UNREACHABLE|NETWORK_UNREACHABLE|IO_TIMEOUT|NETWORK_NAME_DELETED|PIPE_BROKEN|END_OF_FILE|UNSUCCESSFUL|INVALID_NETWORK_RESPONSE/;

/** How long a command that moves no file data may take before the server counts as unreachable. */
const COMMAND_TIMEOUT_MS = 120_000;
/** Files one smbclient run fetches for readSmallFiles. */
const SMALL_FILES_PER_RUN = 200;
/** The size of the pieces a put feeds smbclient (see write()). */
const PUT_WRITE_BYTES = 1024 * 1024;
/** smbclient's own per-request timeout, which also bounds a stalled transfer. */
const REQUEST_TIMEOUT_S = 60;

/**
 * An SMB 3 share reached through Debian's smbclient, one short smbclient run per operation.
 *
 * The password only ever travels through an auth file (mode 0600, in a private temp folder, removed
 * after the run) named with -A: never argv, never the environment (smbclient runs with a minimal
 * environment, so a password the host took from AZSBACKUP_PASSWORD is not inherited either).
 *
 * Writes stream into a temporary name and are renamed into place once smbclient reports success,
 * so an interrupted or failed write never shows under its final name; the partial file is deleted
 * on failure (best effort: a broken connection can leave it, and it carries the partial marker).
 *
 * Samba's `max disk size` and quotas only change what the server reports, so a write also stops
 * itself with ShareCapacity once it exceeds the free space the share last reported to this target
 * (every `ls` reports it), less what the target has written since.
 */
export interface SmbTargetOptions {
  /**
   * A folder private to this process (src/process/private-dir.ts) for the auth file holding the
   * password and for fetched files, so that a kill -9 leaves neither in TMPDIR. Without it, TMPDIR.
   */
  privateDir?: string;
}

export class SmbTarget implements Target {
  readonly location: string;
  readonly endpoint: { host: string; port: number };
  private readonly user: { domain?: string; user: string };
  // A true private field: it stays out of JSON.stringify, util.inspect and error dumps of the target.
  readonly #credential: SmbCredential;
  /** The free space the share last reported to this target, and what its writes have sent since. */
  private reported: FreeSpace | undefined;
  private writtenSinceReport = 0;

  constructor(
    readonly share: SmbLocation,
    credential: SmbCredential,
    private readonly options: SmbTargetOptions = {},
  ) {
    this.#credential = { ...credential };
    this.location = share.display;
    this.endpoint = { host: share.server, port: share.port };
    this.user = parseUserName(credential.userName);
    for (const [what, value] of [
      ['user name', this.user.user],
      ['domain', this.user.domain ?? ''],
      ['password', credential.password],
    ] as const) {
      if (/[\r\n\0]/.test(value)) throw unsupportedCredential(`the ${what} contains a line break or NUL character`);
    }
    // smbclient reads the auth file's user name as 'user%password': the rest would replace the password.
    if (this.user.user.includes('%')) throw unsupportedCredential("the user name contains '%'");
    // smbclient strips the whitespace after 'password =' in its auth file; such a password cannot be sent faithfully.
    if (/^\s/.test(credential.password)) throw unsupportedCredential('the password begins with white space');
  }

  /** Where the auth file and fetched files go: the private folder when given, else TMPDIR. */
  private async scratch(): Promise<string> {
    return this.options.privateDir ? ensurePrivateDir(this.options.privateDir) : os.tmpdir();
  }

  // ---- paths ---------------------------------------------------------------------------------

  private segments(p: string, allowRoot = false): string[] {
    const segs = splitTargetPath(p, { allowRoot });
    for (const s of segs) {
      if (BAD_SMB_NAME.test(s)) {
        throw new AzsError(`Internal error: '${p}' contains a character an SMB share cannot hold.`, {
          errorId: 'InvalidTargetPath',
          category: 'InvalidOperation',
          targetObject: p,
        });
      }
    }
    return segs;
  }

  /** A path as one quoted smbclient argument, relative to the -D folder. */
  private q(segs: string[]): string {
    return `"${segs.join('\\')}"`;
  }

  private mkdirCommands(dirSegs: string[]): string[] {
    return dirSegs.map((_, i) => `mkdir ${this.q(dirSegs.slice(0, i + 1))}`);
  }

  // ---- the one place that runs smbclient and reads its verdict -------------------------------

  /**
   * Runs smbclient with `commands`, optionally feeding stdin and/or handing out stdout as a stream.
   * Connection-level failures (unreachable, refused credentials, unknown share, missing folder)
   * become the matching share error; per-command NT_STATUS failures are returned for the caller to
   * judge, through `failureError` below, so the mapping lives here only.
   */
  private async run(commands: string[], io: Omit<RunIo, 'marked'> = {}): Promise<{ stdout: string; failures: Failure[] }> {
    const scratch = await this.scratch();
    const dir = await fsp.mkdtemp(path.join(scratch, 'azsbackup-smb-')).catch((e: unknown) => {
      throw this.noRoomForAuthFile(e, scratch);
    });
    liveAuthFolders.add(dir);
    try {
      const authFile = await this.writeAuthFile(dir).catch((e: unknown) => {
        throw this.noRoomForAuthFile(e, scratch);
      });
      // A run that feeds smbclient's stdin starts with `pwd`, whose line (printed at once under
      // stdbuf -oL) says the share and folder are open: the stream is fed only then, so a run
      // that ended without it never touched the stream. Where stdbuf is missing, the line would
      // only come at exit: the stream is fed at once, as before. A run whose stdout carries a file
      // (get ... -) is never marked: its stdout is the file's bytes.
      const marked = io.stdin !== undefined && io.stdout === undefined && stdoutLinesPrompt(clientPath());
      const runIo: RunIo = { ...io, marked };
      const args = this.clientArgs(authFile, marked ? ['pwd', ...commands] : commands, io.stdout !== undefined);
      let run = await this.runClient(args, runIo);
      for (const pause of REOPEN_PAUSES_MS) {
        try {
          return this.verdict(run);
        } catch (e) {
          // A server that drops the connection while it is being opened (before our first command)
          // has done nothing yet: try again, where no stream was handed to this run.
          if (io.stdout || run.fed || !droppedWhileOpening(e)) throw e;
          await new Promise((resolve) => setTimeout(resolve, pause));
          run = await this.runClient(args, runIo);
        }
      }
      return this.verdict(run);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
      liveAuthFolders.delete(dir);
    }
  }

  /**
   * A full disk where the auth file goes is this machine's, not the share's: said as such, not as
   * a bare ENOSPC (which a backup reported with no advice and a restore as a bug of ours).
   */
  private noRoomForAuthFile(e: unknown, folder: string): unknown {
    const code = (e as NodeJS.ErrnoException)?.code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') return e;
    const [where, moved] = this.options.privateDir
      ? ["AZSBACKUP_HOME's private folder", 'AZSBACKUP_HOME']
      : ['the temporary folder (TMPDIR)', 'TMPDIR'];
    return new AzsError(`There is no room in ${where} '${folder}' for the file that hands smbclient the share's credentials (${code}).`, {
      errorId: 'SmbCredentialFileNoRoom',
      category: 'QuotaExceeded',
      exitCode: ExitCode.Capacity,
      targetObject: folder,
      cause: e,
      recommendedAction: `Make room on the file system of ${moved} ('${folder}'), or point ${moved} at one with room, then run the command again.`,
    });
  }

  /** The credential as smbclient's authentication file (-A), 0600 in a fresh private folder. */
  private async writeAuthFile(dir: string): Promise<string> {
    const authFile = path.join(dir, 'auth');
    const lines = [`username = ${this.user.user}`, `password = ${this.#credential.password}`];
    if (this.user.domain !== undefined) lines.push(`domain = ${this.user.domain}`);
    await fsp.writeFile(authFile, lines.join('\n') + '\n', { mode: 0o600, flag: 'wx' });
    return authFile;
  }

  private clientArgs(authFile: string, commands: string[], streamsStdout: boolean): string[] {
    const args = [
      `//${this.share.server.replace(/^\[|\]$/g, '')}/${this.share.share}`,
      '-p',
      String(this.share.port),
      '-A',
      authFile,
      '-m',
      'SMB3',
      '--option=client min protocol=SMB3',
      '-t',
      String(REQUEST_TIMEOUT_S),
    ];
    if (this.share.folder !== '') args.push('-D', this.share.folder.split('/').join('\\'));
    // smbclient prints its messages on stdout; when stdout carries file data they must go elsewhere.
    if (streamsStdout) args.push('-E');
    args.push('-c', commands.join('; '));
    return args;
  }

  /** Starts smbclient, feeds its input if any, and waits for it; an input failure is kept, not thrown. */
  private async runClient(args: string[], io: RunIo): Promise<ClientRun> {
    const streaming = io.stdin !== undefined || io.stdout !== undefined;
    const sub = startSmbClient(args, {
      env: { PATH: clientPath(), TZ: 'UTC', LC_ALL: 'C.UTF-8' },
      stdin: io.stdin !== undefined,
      streamStdout: io.stdout !== undefined,
      timeoutMs: streaming ? undefined : COMMAND_TIMEOUT_MS,
      maxLocalFileBytes: io.maxLocalFileBytes,
      watchLine: io.marked ? (line) => SHARE_OPENED.test(line) : undefined,
    });
    io.stdout?.(sub);
    if (io.marked && !(await shareOpened(sub))) {
      // It ended before the share was open: its stdin was never written to, nor the stream read.
      // (lineShown says so only once it has exited: closing its stdin now cannot complete a put.)
      sub.stdin?.destroy();
      const result = withoutOpenedLine(await sub.result);
      // It cannot have put the file: an exit code 0 here is not a success.
      const ended = result.failed ? result : { ...result, failed: true, shortMessage: `${result.shortMessage} before the share was open` };
      return { result: ended, inputError: undefined, stoppedReading: false, fed: false };
    }
    let inputError: unknown;
    let stoppedReading = false;
    const feeding = io.stdin?.(sub).catch((e: unknown) => {
      inputError = e;
      if (isClosedPipe(e)) {
        // smbclient stopped reading on its own (the server went away, the disk filled): it is
        // exiting and its output says why, which killing it now would lose. Force it only if it lingers.
        stoppedReading = true;
        const timer = setTimeout(() => sub.kill('SIGKILL'), 5000);
        void sub.result.finally(() => clearTimeout(timer));
        return;
      }
      // Killing (rather than ending stdin) matters: on EOF smbclient would store the partial data as a complete file.
      sub.kill('SIGKILL');
    });
    const result = await sub.result;
    await feeding;
    return { result: io.marked ? withoutOpenedLine(result) : result, inputError, stoppedReading, fed: io.stdin !== undefined };
  }

  /** What smbclient's run means: its output and per-command failures, or the error that stopped it. */
  private verdict({ result, inputError, stoppedReading }: ClientRun): { stdout: string; failures: Failure[] } {
    const output = `${result.stdout}\n${result.stderr}`;
    if (result.signal === 'SIGXFSZ') throw new LocalFileLimitReached(parseFailures(output));
    const connectionError = this.connectionError(result, output);
    if (stoppedReading && connectionError === undefined && (result.isTerminated || parseFailures(output).length === 0)) {
      // The transfer ended mid-stream without a verdict: the session to the share is what broke.
      throw shareError(
        'ShareConnectivity',
        `The transfer to ${this.location} stopped: smbclient quit reading (${summarize(output) || result.shortMessage}).`,
        {
          targetObject: this.location,
          cause: inputError,
        },
      );
    }
    // When we killed smbclient because the input failed, the input's error is the real cause,
    // unless smbclient had already said why it stopped reading.
    if (inputError !== undefined && (connectionError === undefined || result.isTerminated)) {
      // smbclient stopped reading because a command failed (a full disk): the caller maps that.
      // Where our side failed (the source, the room check), its failures are not why: a benign
      // one (a parent folder that exists) let such a write pass as complete.
      const failures = result.isTerminated || !stoppedReading ? [] : parseFailures(output);
      if (failures.length > 0) return { stdout: '', failures };
      throw inputError;
    }
    if (connectionError) throw connectionError;
    const failures = parseFailures(output);
    if (result.failed && failures.length === 0) {
      throw new AzsError(`smbclient failed on ${this.location}: ${summarize(output) || result.shortMessage}`, {
        errorId: 'SmbClientFailed',
        category: 'NotSpecified',
        targetObject: this.location,
        recommendedAction: 'Run Test-BackupShare for details; check the share with smbclient from this machine.',
      });
    }
    return { stdout: result.stdout, failures };
  }

  /** smbclient did not start: not installed, or this machine's limit on processes reached. */
  private launchError(result: SmbClientResult): AzsError | undefined {
    if (result.missing) {
      return new AzsError('smbclient is not installed, so SMB shares cannot be reached.', {
        errorId: 'SmbClientMissing',
        category: 'ResourceUnavailable',
        exitCode: 1,
        recommendedAction: 'Install it (apt-get install smbclient), then retry.',
      });
    }
    if (result.processLimit) {
      // This machine's limit, not the share's: no ShareConnectivity alert, no "check the share".
      return new AzsError(
        `smbclient could not be started to reach ${this.location}: a limit on processes is reached (${result.shortMessage}).`,
        {
          errorId: 'SmbClientProcessLimit',
          category: 'ResourceUnavailable',
          exitCode: ExitCode.Failure,
          targetObject: this.location,
          recommendedAction:
            "Raise the limit on processes of the account or service that runs AzsBackup (ulimit -u, systemd's TasksMax= or LimitNPROC=, a container's pids limit or cgroup pids.max), or run the job when fewer processes run.",
        },
      );
    }
    return undefined;
  }

  /** Failures before any command ran: reaching the server, logging on, opening the share and folder. */
  private connectionError(result: SmbClientResult, output: string): AzsError | undefined {
    const unstarted = this.launchError(result);
    if (unstarted) return unstarted;
    if (result.timedOut) {
      return shareError('ShareConnectivity', `The file server of ${this.location} did not answer in time.`, {
        targetObject: this.location,
      });
    }
    const messages = messageLines(output).join('\n');
    const m = (re: RegExp) => re.exec(messages)?.[1];
    const connect = m(/^(?:do_connect: )?Connection to .* failed \(Error (NT_STATUS_\w+)\)/m);
    if (connect) {
      const why = connect === 'NT_STATUS_UNSUCCESSFUL' ? 'the server name could not be resolved or reached' : connect;
      return shareError('ShareConnectivity', `Cannot reach the file server ${this.share.server}:${this.share.port} (${why}).`, {
        targetObject: this.location,
      });
    }
    const negotiate = m(/^(?:\S+: )?protocol negotiation failed: (NT_STATUS_\w+)/m);
    if (negotiate) {
      return shareError('ShareConnectivity', `The file server ${this.share.server} does not speak SMB 3 (${negotiate}).`, {
        targetObject: this.location,
      });
    }
    const session = m(/^(?:\S+: )?session setup failed: (NT_STATUS_\w+)/m);
    if (session) {
      if (AUTH_REFUSED.test(session)) {
        return shareError(
          'ShareAuthentication',
          `The file server refused the credentials of '${this.#credential.userName}' (${session}).`,
          {
            targetObject: this.location,
          },
        );
      }
      return shareError('ShareConnectivity', `Logging on to ${this.share.server} failed (${session}).`, { targetObject: this.location });
    }
    const tree = m(/^(?:\S+: )?tree connect failed: (NT_STATUS_\w+)/m);
    if (tree) {
      if (tree === 'NT_STATUS_BAD_NETWORK_NAME') {
        return shareError('SharePath', `The share '${this.share.share}' does not exist on ${this.share.server}.`, {
          targetObject: this.location,
        });
      }
      if (AUTH_REFUSED.test(tree)) {
        return shareError('ShareAuthentication', `'${this.#credential.userName}' may not open the share ${this.location} (${tree}).`, {
          targetObject: this.location,
        });
      }
      return shareError('ShareConnectivity', `Opening the share ${this.location} failed (${tree}).`, { targetObject: this.location });
    }
    // -D is the only 'cd' we issue: it fails when the configured folder is missing.
    const cd = m(/^cd \\.*: (NT_STATUS_\w+)/m);
    if (cd && CONNECTION_DROPPED.test(cd)) {
      return shareError('ShareConnectivity', `The file server dropped the connection while ${this.location} was opened (${cd}).`, {
        targetObject: this.location,
      });
    }
    if (cd) {
      if (AUTH_REFUSED.test(cd)) {
        return shareError('ShareAuthentication', `'${this.#credential.userName}' may not open ${this.location} (${cd}).`, {
          targetObject: this.location,
        });
      }
      return shareError('SharePath', `The folder '${this.share.folder}' does not exist on the share ${this.location} (${cd}).`, {
        targetObject: this.location,
      });
    }
    return undefined;
  }

  /** The error a per-command failure means, for the target path `p`. */
  private failureError(f: Failure, p: string): AzsError {
    const s = f.status;
    if (CAPACITY.test(s)) {
      return shareError('ShareCapacity', `The share ${this.location} ran out of space writing '${p}' (${s}).`, { targetObject: p });
    }
    if (AUTH_REFUSED.test(s)) {
      return shareError('ShareAuthentication', `'${this.#credential.userName}' may not access '${p}' on ${this.location} (${s}).`, {
        targetObject: p,
        category: 'PermissionDenied',
      });
    }
    if (NOT_FOUND.has(s)) return notFound(this.location, p);
    if (s === 'NT_STATUS_OBJECT_NAME_COLLISION') return alreadyExists(this.location, p);
    if (CONNECTIVITY.test(s)) {
      return shareError('ShareConnectivity', `The connection to ${this.location} broke during an operation on '${p}' (${s}).`, {
        targetObject: p,
      });
    }
    return new AzsError(`The file server refused an operation on '${p}' on ${this.location}: ${f.line}`, {
      errorId: 'ShareOperationFailed',
      category: 'WriteError',
      targetObject: p,
      recommendedAction: 'Check the share with Test-BackupShare and the file server logs.',
    });
  }

  /** Throws for the first failure `tolerate` does not accept. */
  private check(failures: Failure[], p: string, tolerate: (f: Failure) => boolean = () => false): void {
    const bad = failures.find((f) => !tolerate(f));
    if (bad) throw this.failureError(bad, p);
  }

  // ---- the Target interface ------------------------------------------------------------------

  async write(p: string, data: Readable, options: WriteOptions = {}): Promise<{ bytes: number }> {
    const segs = this.segments(p);
    const dirSegs = segs.slice(0, -1);
    // In place when the caller commits the folder: a stream that fails kills smbclient before it
    // sees the end of its input (see run()), so a cut-short put never completes, and it is deleted.
    const inPlace = options.atomic === false;
    const tempSegs = inPlace ? segs : [...dirSegs, partialNameFor(segs[segs.length - 1]!)];

    // The free space the write may use: as the share last reported it to this target, less what
    // its writes (this one and any running beside it) have sent since; otherwise one round trip
    // makes the parents and asks.
    // A file only replaced is never given a folder: one that is gone fails the put (not found).
    let makeParents = options.replaceOnly ? [] : this.mkdirCommands(dirSegs);
    if (this.reported === undefined) {
      try {
        const pre = await this.run([...makeParents, dirSegs.length === 0 ? 'ls' : `ls ${this.q(dirSegs)}`]);
        makeParents = [];
        this.check(pre.failures, p, isMkdirCollision);
        this.noteFreeSpace(pre.stdout);
      } catch (e) {
        data.destroy();
        throw e;
      }
    }

    let bytes = 0;
    // smbclient sends what one read of its stdin gives it as one SMB write, and the cipher hands
    // out 64 KiB pieces: gathered into 1 MiB writes, a 270 MiB put took ~20% less time.
    const gathered = new ByteQueue({ trackConsumed: true });
    const giveBack = recyclerOf(data);
    const allGathered = (): Buffer | undefined => {
      if (gathered.length === 0) return undefined;
      const out = gathered.take(gathered.length);
      // Chunks copied into a gathered write are free at once; a chunk passed on whole comes back
      // once smbclient's pipe has taken it.
      for (const chunk of gathered.takeConsumed()) if (chunk !== out) giveBack?.(chunk);
      return out;
    };
    const counter = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        bytes += chunk.length;
        this.writtenSinceReport += chunk.length;
        if (this.reported !== undefined && this.writtenSinceReport > this.reported.available) {
          cb(
            shareError('ShareCapacity', `The share ${this.location} had ${this.reported.available} bytes free; '${p}' needs more.`, {
              targetObject: p,
            }),
          );
          return;
        }
        gathered.push(chunk);
        cb(null, gathered.length >= PUT_WRITE_BYTES ? allGathered() : undefined);
      },
      flush: (cb) => cb(null, allGathered()),
    });
    try {
      const put = await this.run([...makeParents, `put - ${this.q(tempSegs)}`], {
        // No stdin: smbclient did not start, and run() says why.
        stdin: async (sub) => (sub.stdin ? feedUntilClosed(data, counter, sub, giveBack) : undefined),
      });
      this.check(put.failures, p, isMkdirCollision);
      if (!inPlace) {
        const ren = await this.run([`rename ${this.q(tempSegs)} ${this.q(segs)} -f`]);
        this.check(ren.failures, p);
      }
    } catch (e) {
      data.destroy();
      this.reported = undefined;
      await this.run([`deltree ${this.q(tempSegs)}`]).catch(() => {});
      throw e;
    }
    return { bytes };
  }

  async read(p: string): Promise<Readable> {
    const segs = this.segments(p);
    const out = new PassThrough();
    let started!: () => void;
    const firstData = new Promise<void>((resolve) => (started = resolve));
    let sub: SmbClient | undefined;
    let finished = false;
    const done = this.run([`get ${this.q(segs)} -`], {
      stdout: (s) => {
        sub = s;
        const stdout = s.stdout;
        if (!stdout) return; // smbclient did not start: run() says why
        // Its buffers pass through `out` as they are, so the reader can hand them back.
        recycleThrough(out, stdout);
        // Resolve only once bytes arrive: a missing file must reject read(), not fail the stream later.
        stdout.once('data', () => started());
        // Ending `out` waits for smbclient's verdict, so a transfer cut short is an error, not a short file.
        stdout.pipe(out, { end: false });
      },
    }).then(
      (r) => {
        finished = true;
        this.check(r.failures, p);
      },
      (e: unknown) => {
        finished = true;
        throw e;
      },
    );
    out.on('close', () => {
      if (finished) return;
      sub?.kill('SIGKILL');
      // Unread output would otherwise keep smbclient's end from being seen.
      sub?.stdout?.destroy();
    });
    const outcome = await Promise.race([firstData.then(() => 'streaming' as const), done.then(() => 'done' as const)]);
    if (outcome === 'streaming') {
      done.then(
        () => out.end(),
        (e: unknown) => out.destroy(e instanceof Error ? e : new Error(String(e))),
      );
    } else {
      out.end();
    }
    return out;
  }

  async list(p: string): Promise<TargetEntry[]> {
    const segs = this.segments(p, true);
    const r = await this.run([`ls ${this.q([...segs, '*'])}`]);
    if (r.failures.some((f) => NOT_FOUND.has(f.status))) return [];
    this.check(r.failures, p);
    return parseListing(r.stdout).filter((e) => e.name !== '.' && e.name !== '..' && sayable(e.name));
  }

  async listTree(p: string): Promise<TreeEntry[]> {
    const segs = this.segments(p, true);
    const r = await this.run(['recurse ON', `ls ${this.q([...segs, '*'])}`]);
    // Only the folder itself may be missing; a missing subfolder means it vanished while listed.
    const missing = (f: Failure) => NOT_FOUND.has(f.status) && f.line.endsWith(`${this.remotePath(segs)}\\*`);
    if (r.failures.some(missing)) return [];
    this.check(r.failures, p);
    return parseTreeListing(r.stdout, this.remotePath(segs)).filter((e) => e.path.split('/').every(sayable));
  }

  async readSmallFiles(paths: readonly string[], maxBytes = SMALL_FILE_MAX_BYTES): Promise<(Buffer | AzsError | undefined)[]> {
    const files: (Buffer | AzsError | undefined)[] = [];
    // A few hundred gets per run keep the -c argument far below the kernel's 128 KiB limit.
    for (let start = 0; start < paths.length; start += SMALL_FILES_PER_RUN) {
      files.push(...(await this.readBatch(paths.slice(start, start + SMALL_FILES_PER_RUN), maxBytes)));
    }
    return files;
  }

  /**
   * smbclient fetches whole files, so a caller that knows sizes (the catalog does, from its
   * listing) skips large ones before asking; what arrives is read bounded all the same, and where
   * util-linux's prlimit is installed (Debian always has it) no file grows on this machine past the
   * limit, even one made larger on the share after it was listed.
   */
  private async readBatch(paths: readonly string[], maxBytes: number): Promise<(Buffer | AzsError | undefined)[]> {
    if (paths.length === 0) return [];
    const scratch = await this.scratch();
    // The local names go into the -c command line too, where nothing escapes a ';' (which ends the
    // command: smbclient then writes the file where the name was cut, outside this folder) or a '"'.
    if (/[";\x00-\x1f]/.test(scratch)) throw localPathUnsupported(scratch);
    const dir = await fsp.mkdtemp(path.join(scratch, 'azsbackup-smb-get-'));
    try {
      // The local names are quoted too: TMPDIR may hold spaces.
      const gets = paths.map((p, i) => `get ${this.q(this.segments(p))} "${path.join(dir, String(i))}"`);
      // A caller's size check comes from a listing, and the file may have grown since: the kernel
      // stops smbclient one byte past the limit, so no file is fetched further than that.
      let fetched = paths.length;
      let failures: Failure[];
      try {
        ({ failures } = await this.run(gets, { maxLocalFileBytes: maxBytes + 1 }));
      } catch (e) {
        if (!(e instanceof LocalFileLimitReached)) throw e;
        fetched = (await this.overLimit(dir, paths.length, maxBytes)) + 1;
        failures = e.failures;
      }
      this.check(failures, paths.join(', '), (f) => NOT_FOUND.has(f.status));
      const files = await Promise.all(
        paths.slice(0, fetched).map((p, i) =>
          readFileBounded(path.join(dir, String(i)), {
            ...shareFileLimit(this.location, maxBytes),
            what: `file '${p}' on ${this.location}, fetched as`,
          }).catch((e: unknown) => (isRefusedFile(e) ? e : undefined)),
        ),
      );
      // smbclient stopped at the file too large; those after it were never asked for.
      return [...files, ...(await this.readBatch(paths.slice(fetched), maxBytes))];
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  /** Which of readBatch's local files smbclient was stopped on: the one past `maxBytes`. */
  private async overLimit(dir: string, count: number, maxBytes: number): Promise<number> {
    for (let i = count - 1; i >= 0; i--) {
      const size = await fsp.stat(path.join(dir, String(i))).then(
        (st) => st.size,
        () => 0,
      );
      if (size > maxBytes) return i;
    }
    // A SIGXFSZ with no file at the limit: something else in smbclient hit it. Not ours to guess.
    throw new AzsError(`smbclient was stopped writing a file on this machine past ${maxBytes} bytes while reading from ${this.location}.`, {
      errorId: 'SmbClientFailed',
      category: 'NotSpecified',
      targetObject: this.location,
      recommendedAction: 'Run Test-BackupShare for details; check the share with smbclient from this machine.',
    });
  }

  /** How smbclient names a folder in its messages and listing headers: from the share root, '\\'-separated. */
  private remotePath(segs: string[]): string {
    const folder = this.share.folder === '' ? [] : this.share.folder.split('/');
    return ['', ...folder, ...segs].join('\\');
  }

  async stat(p: string): Promise<TargetEntry | undefined> {
    const segs = this.segments(p, true);
    if (segs.length === 0) {
      // The root is the -D folder: if run() gets past it, it exists.
      await this.run(['ls']);
      return { name: '', isDirectory: true, size: 0, mtime: new Date(0) };
    }
    const r = await this.run([`ls ${this.q(segs)}`]);
    if (r.failures.some((f) => NOT_FOUND.has(f.status))) return undefined;
    this.check(r.failures, p);
    return parseListing(r.stdout).find((e) => e.name === segs[segs.length - 1]);
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.segments(from);
    const dst = this.segments(to);
    const r = await this.run([...this.mkdirCommands(dst.slice(0, -1)), `rename ${this.q(src)} ${this.q(dst)}`]);
    const failure = r.failures.find((f) => !isMkdirCollision(f));
    if (failure === undefined) return;
    if (failure.status === 'NT_STATUS_OBJECT_NAME_COLLISION') throw alreadyExists(this.location, to);
    throw this.failureError(failure, from);
  }

  async delete(p: string): Promise<void> {
    const segs = this.segments(p);
    const r = await this.run([`deltree ${this.q(segs)}`]);
    this.check(r.failures, p, (f) => NOT_FOUND.has(f.status));
  }

  async mkdir(p: string): Promise<void> {
    const segs = this.segments(p);
    // The free space comes with it for nothing, and spares the writes that usually follow a request.
    const r = await this.run([...this.mkdirCommands(segs), segs.length === 0 ? 'ls' : `ls ${this.q(segs)}`]);
    this.check(r.failures, p, isMkdirCollision);
    this.noteFreeSpace(r.stdout);
  }

  /** Remembers the free space an `ls` printed; writes then count down from it. */
  private noteFreeSpace(stdout: string): void {
    this.reported = parseFreeSpace(stdout);
    this.writtenSinceReport = 0;
  }

  async freeSpace(): Promise<FreeSpace> {
    const r = await this.run(['ls']);
    this.check(r.failures, '');
    this.noteFreeSpace(r.stdout);
    const room = parseFreeSpace(r.stdout);
    if (!room) {
      throw new AzsError(`The file server did not report the free space of ${this.location}.`, {
        errorId: 'ShareFreeSpaceUnknown',
        category: 'InvalidData',
        exitCode: 1,
        targetObject: this.location,
      });
    }
    return room;
  }
}

/**
 * The folders holding an auth file (the share password) while smbclient runs. A process that ends
 * with process.exit() (a second Ctrl-C) skips the finally that removes them; this does not. Only
 * SIGKILL leaves one behind, owner-only (0600 in a 0700 folder) in the process's private folder,
 * which the next command removes (src/process/private-dir.ts).
 */
const liveAuthFolders = new Set<string>();
process.once('exit', () => {
  for (const dir of liveAuthFolders) rmSync(dir, { recursive: true, force: true });
});

/** smbclient was stopped by the kernel: a file it wrote here reached the limit it ran under. */
class LocalFileLimitReached extends Error {
  /** What the commands before it reported. */
  constructor(readonly failures: Failure[]) {
    super('smbclient reached the local file size limit (SIGXFSZ)');
  }
}

function localPathUnsupported(folder: string): AzsError {
  return new AzsError(
    `Files cannot be fetched from an SMB share into '${folder}': smbclient's commands cannot name a path holding ';', '"' or a control character.`,
    {
      errorId: 'LocalPathUnsupported',
      category: 'InvalidArgument',
      targetObject: folder,
      recommendedAction: 'Point AZSBACKUP_HOME (or TMPDIR) at a folder whose path holds none of these characters.',
    },
  );
}

function unsupportedCredential(why: string): AzsError {
  return new AzsError(`The credential cannot be used for an SMB share: ${why}.`, {
    errorId: 'UnsupportedCredential',
    category: 'InvalidArgument',
    recommendedAction: "Use an account name without '%' and a password without leading white space, neither with line breaks.",
  });
}

function isMkdirCollision(f: Failure): boolean {
  return f.status === 'NT_STATUS_OBJECT_NAME_COLLISION' && /making remote directory/.test(f.line);
}

/** The error writing into a pipe whose reader has gone. */
/**
 * `data` through `counter` into smbclient's stdin. When smbclient closes its stdin before the data
 * has ended (it exits as the server goes away), Node may report only "Premature close", not EPIPE
 * (a pipe's reader that goes away between two writes); that is smbclient stopping, and is
 * reported as EPIPE so that runClient waits for its verdict. A source that fails or is destroyed
 * first keeps its own error: smbclient must then be killed, not left to store what it got.
 */
async function feedUntilClosed(data: Readable, counter: Transform, sub: SmbClient, giveBack?: (chunk: Buffer) => void): Promise<void> {
  const stdin = sub.stdin!;
  let sourceDone = false;
  let smbclientFirst = false;
  // Killed before the pipeline closes its stdin, which smbclient would read as the end of the
  // file and store what it got as the whole file: these listeners come before the pipeline's.
  const stopFirst = (): void => {
    if (!smbclientFirst) sub.kill('SIGKILL');
  };
  data.once('error', stopFirst);
  counter.once('error', stopFirst);
  data.once('close', () => {
    sourceDone = true;
    if (!data.readableEnded) stopFirst();
  });
  stdin.once('close', () => {
    if (!sourceDone) smbclientFirst = true;
  });
  try {
    await pipeline(data, counter, giveBack ? reportingWrites(stdin, giveBack) : stdin);
  } catch (e) {
    if (smbclientFirst && !isClosedPipe(e))
      throw Object.assign(new Error(`smbclient closed its input before the data ended (${(e as Error).message})`), {
        code: 'EPIPE',
        cause: e,
      });
    throw e;
  }
}

function isClosedPipe(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ECONNRESET';
}

function parseFailures(output: string): Failure[] {
  const failures: Failure[] = [];
  for (const line of messageLines(output)) {
    const m = /(NT_STATUS_[A-Z0-9_]+)/.exec(line);
    if (m) failures.push({ status: m[1]!, line: line.trim() });
  }
  return failures;
}

/**
 * smbclient's own lines, without the listing's: an entry is indented ("  name  A  size  date"), a
 * folder header of a recursive listing starts with '\\', the free space line with white space. A
 * file named "x NT_STATUS_NOT_FOUND" or "Connection to y failed (Error ...)" is data, never a
 * verdict; read as one it made a listing look empty, and an empty folder is one prune deletes.
 */
function messageLines(output: string): string[] {
  return output.split('\n').filter((line) => line !== '' && !/^[\s\\]/.test(line));
}

function summarize(output: string): string {
  return output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-3)
    .join(' / ');
}

/** `5120 blocks of size 1024. 5119 blocks available` */
export function parseFreeSpace(stdout: string): FreeSpace | undefined {
  // Its own line, the listing's last, not a file named like it.
  const m = [...stdout.matchAll(/^\s+(\d+) blocks of size (\d+)\. (\d+) blocks available\s*$/gm)].at(-1);
  if (!m) return undefined;
  const size = Number(m[2]);
  return { total: Number(m[1]) * size, available: Number(m[3]) * size };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
// smbclient prints "  %-30s%7s %8.0f  %s": name padded, attributes, size, then ctime() in the
// client's time zone (we run it with TZ=UTC). Names may hold spaces, so anchor on the right.
const LISTING_LINE = /^ {2}(.+?)\s+([A-Z]*)\s+(\d+)\s+\w{3} (\w{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})$/;

/**
 * The entries of a `recurse ON; ls <folder>\\*` listing, with their paths below `root` (the listed
 * folder as smbclient names it). Entries before the first header are the folder's own; each
 * subfolder's entries follow a header line holding its full name.
 */
export function parseTreeListing(stdout: string, root: string): TreeEntry[] {
  const tree: TreeEntry[] = [];
  const prefix = `${root}\\`.toLowerCase();
  let below = '';
  for (const line of stdout.split('\n')) {
    if (line.startsWith('\\')) {
      const header = line.trimEnd();
      if (header.slice(0, root.length + 1).toLowerCase() !== prefix) {
        throw new AzsError(`smbclient listed '${header}' while listing '${root}'.`, {
          errorId: 'ShareListingUnexpected',
          category: 'InvalidData',
          exitCode: 1,
        });
      }
      // Cut at the root's own length: lower-casing may change it ('İ' becomes two code units).
      below = header
        .slice(root.length + 1)
        .split('\\')
        .join('/');
      continue;
    }
    for (const entry of parseListing(line)) {
      if (entry.name === '.' || entry.name === '..') continue;
      tree.push({ ...entry, path: below === '' ? entry.name : `${below}/${entry.name}` });
    }
  }
  return tree;
}

/** The entries of an smbclient `ls` listing. */
export function parseListing(stdout: string): TargetEntry[] {
  const entries: TargetEntry[] = [];
  for (const line of stdout.split('\n')) {
    const m = LISTING_LINE.exec(line);
    if (!m) continue;
    const [, name, attrs, size, mon, day, hh, mm, ss, year] = m as unknown as string[];
    entries.push({
      name: name!,
      isDirectory: attrs!.includes('D'),
      size: attrs!.includes('D') ? 0 : Number(size),
      mtime: new Date(Date.UTC(Number(year), MONTHS.indexOf(mon!), Number(day), Number(hh), Number(mm), Number(ss))),
    });
  }
  return entries;
}

const CONNECTION_DROPPED = /CONNECTION_(DISCONNECTED|RESET|ABORTED)/;
/**
 * Pauses before each new try of a run whose connection the server dropped while it was opened.
 * Samba 4.17 on loopback was seen dropping every connection of one client for a second or more
 * at the first command (the test drill, about one run in ten), and one try 250 ms later was not
 * always enough.
 */
const REOPEN_PAUSES_MS = [250, 1000, 2000];

/** The line smbclient's `pwd` prints: "Current directory is \\server\share\folder\". */
const SHARE_OPENED = /^Current directory is \\/;
/**
 * How long a marked run waits for that line before it feeds its stream all the same (as an
 * unmarked run does at once, never run again): an smbclient that stdbuf cannot line-buffer would
 * otherwise wait for its stdin while we wait for its line. Opening a share takes well under this.
 */
const OPENING_WAIT_MS = 10_000;

/** The PATH smbclient runs with (and where stdbuf and prlimit are looked for). */
function clientPath(): string {
  return process.env.PATH ?? '/usr/bin:/bin';
}

/** Whether smbclient showed the share opened (true also when it is slow to say: see OPENING_WAIT_MS). */
async function shareOpened(sub: SmbClient): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<true>((resolve) => (timer = setTimeout(resolve, OPENING_WAIT_MS, true)));
  try {
    return await Promise.race([sub.lineShown, waited]);
  } finally {
    clearTimeout(timer);
  }
}

/** The result without `pwd`'s line, which no parsing of smbclient's output (failures, listings, summaries) should see. */
function withoutOpenedLine(result: SmbClientResult): SmbClientResult {
  const lines = result.stdout.split('\n');
  const at = lines.findIndex((line) => SHARE_OPENED.test(line));
  if (at < 0) return result;
  lines.splice(at, 1);
  return { ...result, stdout: lines.join('\n') };
}

/** True for the error of a connection the server dropped while it was being opened (see connectionError). */
function droppedWhileOpening(e: unknown): boolean {
  return isAzsError(e) && e.alertType === 'ShareConnectivity' && /dropped the connection while/.test(e.message);
}
