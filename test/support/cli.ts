import { afterAll, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { Database } from './provider-fixtures.js';

/**
 * The public command line as the engine tests drive it: `node bin/azsbackup.js <Cmdlet> ... --output
 * json`, each run with its own AZSBACKUP_HOME, secrets on stdin. Plus a drill fixture: a share
 * folder, a configured home, and sample roles of every local provider kind. Needs `npm run build`.
 */

export const CLI = fileURLToPath(new URL('../../bin/azsbackup.js', import.meta.url));

export interface ErrorRecordLine {
  Message: string;
  ErrorId: string;
  Category: string;
  TargetObject: unknown;
  RecommendedAction: string | null;
  ExitCode: number;
  Terminating?: boolean;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON; undefined when empty or not JSON. */
  json: any;
  /** The ErrorRecord lines of stderr. */
  errors: ErrorRecordLine[];
}

export interface CliOptions {
  /** Lines for secrets given as `-Param -`. */
  stdin?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Leave standard input open and unwritten (a pipe nobody writes), instead of giving `stdin`. */
  stdinOpen?: boolean;
  /** How a run past its timeout is ended; SIGKILL for one that may not heed SIGTERM. */
  killSignal?: NodeJS.Signals;
}

export function cliEnv(home: string, env?: Record<string, string>): Record<string, string> {
  // A developer's own AZSBACKUP_* secrets must never leak into a test run.
  // AZSBACKUP_STORE passes through: a test of full-copy backups (format 2) sets it for its whole file (fullCopyBackups).
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('AZSBACKUP_') || k === 'AZSBACKUP_STORE'),
  ) as Record<string, string>;
  return { ...clean, AZSBACKUP_HOME: home, ...env };
}

function withOutput(args: string[]): string[] {
  return args.includes('--output') ? args : [...args, '--output', 'json'];
}

export function parseErrors(stderr: string): ErrorRecordLine[] {
  const out: ErrorRecordLine[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const parsed = JSON.parse(line) as { ErrorRecord?: ErrorRecordLine };
      if (parsed.ErrorRecord) out.push(parsed.ErrorRecord);
    } catch {
      /* not a record */
    }
  }
  return out;
}

/** A command's --output json as a list: nothing, one object or an array. */
export const list = (json: unknown): any[] => (json === undefined ? [] : [json].flat());

/** The warnings a command wrote: its `{"Warning": …}` lines on stderr (not a terminal). */
export function warningRecordsIn(stderr: string): { Message: string; TargetObject: string | null }[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{"Warning"'))
    .map((l) => JSON.parse(l).Warning);
}

/** The messages of the warnings a command wrote. */
export function warningsIn(output: CliResult | string): string[] {
  return warningRecordsIn(typeof output === 'string' ? output : output.stderr).map((w) => w.Message);
}

export function resultOf(code: number, stdout: string, stderr: string): CliResult {
  let json: any;
  try {
    json = stdout.trim() ? JSON.parse(stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { code, stdout, stderr, json, errors: parseErrors(stderr) };
}

const missingBuild = /ERR_MODULE_NOT_FOUND[\s\S]*\/dist\/|Cannot find module '[^']*\/dist\//;

export async function runCli(home: string, args: string[], opts: CliOptions = {}): Promise<CliResult> {
  // The work tree is shared: a rebuild elsewhere empties dist/ for a moment. Wait it out rather
  // than report a product failure; a build that never appears still fails below.
  for (let attempt = 0; ; attempt++) {
    const r = await execa(process.execPath, [CLI, ...withOutput(args)], {
      env: cliEnv(home, opts.env),
      extendEnv: false,
      input: opts.stdin ?? '',
      reject: false,
      timeout: opts.timeoutMs ?? 60_000,
      ...(opts.killSignal ? { killSignal: opts.killSignal } : {}),
      stripFinalNewline: false,
    });
    if (r.exitCode !== 0 && missingBuild.test(String(r.stderr)) && attempt < 30) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    return resultOf(r.exitCode ?? -1, String(r.stdout), String(r.stderr));
  }
}

/** Starts the CLI without waiting, for tests that kill it or race it. */
export function spawnCli(home: string, args: string[], opts: CliOptions = {}): ResultPromise<{ reject: false }> {
  return execa(process.execPath, [CLI, ...withOutput(args)], {
    env: cliEnv(home, opts.env),
    extendEnv: false,
    ...(opts.stdinOpen ? { stdin: 'pipe' as const } : { input: opts.stdin ?? '' }),
    reject: false,
    timeout: opts.timeoutMs ?? 60_000,
    ...(opts.killSignal ? { killSignal: opts.killSignal } : {}),
  }) as unknown as ResultPromise<{ reject: false }>;
}

/** Fails the test with the CLI's own words when a command that must work did not. */
export function expectOk(r: CliResult, what = 'command'): CliResult {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

// ---------------------------------------------------------------- pictures of data

/** Every entry under `root` with type, mode, mtime (whole ms) and content hash, or link target. */
export function fingerprint(root: string): string {
  const lines: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const st = lstatSync(p);
      const rel = path.relative(root, p);
      if (st.isSymbolicLink()) lines.push(`L ${rel} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        lines.push(`D ${rel} ${(st.mode & 0o7777).toString(8)}`);
        walk(p);
      } else {
        lines.push(`F ${rel} ${(st.mode & 0o7777).toString(8)} ${Math.floor(st.mtimeMs / 1000)} ${sha256(readFileSync(p))}`);
      }
    }
  };
  walk(root);
  return lines.join('\n');
}

/** Every file under a share (or any folder) with its bytes' hash: "byte-identical" in one string. */
export function shareFingerprint(root: string): string {
  const lines: string[] = [];
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const p = path.join(dir, name);
      const st = lstatSync(p);
      const rel = path.relative(root, p);
      if (st.isDirectory()) {
        lines.push(`D ${rel}`);
        walk(p);
      } else lines.push(`F ${rel} ${st.size} ${sha256(readFileSync(p))}`);
    }
  };
  walk(root);
  return lines.join('\n');
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function dbRows(file: string): unknown[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT id, name, secret FROM items ORDER BY id').all();
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------- the drill fixture

export interface Drill {
  root: string;
  share: string;
  home: string;
  /** Sample role data. */
  files: string;
  db: string;
  tarred: string;
  /** Symmetric key (Base64) when encryption is 'key'. */
  key?: string;
  keyId?: string;
  /** With encryption 'certificate'. */
  cer?: string;
  pfx?: string;
  pfxPassword?: string;
  /** Decryption material as CLI arguments and stdin, for Test-InfrastructureBackup / Restore-AzsBackup. */
  decryptArgs(): { args: string[]; stdin: string };
  cli(args: string[], opts?: CliOptions): Promise<CliResult>;
  /** Registers a role: Register-InfrastructureRole -Name <name> <args>; throws unless it worked. */
  register(name: string, args: string[]): Promise<void>;
  /** Registers a command role; argv elements are bound as -Param:value so leading dashes are fine. */
  registerCommand(name: string, exportArgv: string[], importArgv: string[], extra?: string[]): Promise<void>;
  /** Runs a backup that must succeed; returns its Backup object. */
  backup(args?: string[]): Promise<any>;
  /** The folder of a committed backup on the share. */
  backupFolder(name: string): Promise<string>;
  cleanup(): Promise<void>;
}

export interface DrillOptions {
  encryption?: 'key' | 'certificate';
  /** Register the sample roles Files (directory), Db (sqlite) and Tarred (command). Default true. */
  roles?: boolean;
  /** Extra bytes of random data in the Files role (for multi-chunk files). */
  bigFileBytes?: number;
  retentionDays?: number;
}

export const commandArgs = (param: string, values: string[]): string[] => values.map((v) => `-${param}:${v}`);

async function writeSampleData(d: { files: string; db: string; tarred: string }, bigFileBytes: number): Promise<void> {
  const { randomBytes } = await import('node:crypto');
  await fs.mkdir(path.join(d.files, 'conf.d'), { recursive: true });
  await fs.mkdir(path.join(d.files, 'private'), { recursive: true, mode: 0o700 });
  await fs.writeFile(path.join(d.files, 'cloud.json'), JSON.stringify({ region: 'local', scaleUnits: 4 }));
  await fs.writeFile(path.join(d.files, 'conf.d', 'network.ini'), '[network]\nexternal=10.0.0.0/24\n', { mode: 0o640 });
  await fs.writeFile(path.join(d.files, 'private', 'ca.key'), randomBytes(2048), { mode: 0o600 });
  await fs.writeFile(path.join(d.files, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await fs.symlink('conf.d/network.ini', path.join(d.files, 'current.ini'));
  if (bigFileBytes > 0) await fs.writeFile(path.join(d.files, 'big.bin'), randomBytes(bigFileBytes));
  // Old, distinct times so a restore that loses them is caught.
  const old = new Date('2021-03-04T05:06:07Z');
  for (const f of ['cloud.json', 'conf.d/network.ini', 'private/ca.key', 'run.sh']) await fs.utimes(path.join(d.files, f), old, old);

  const db = new Database(d.db);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, secret BLOB)');
  const insert = db.prepare('INSERT INTO items (name, secret) VALUES (?, ?)');
  db.transaction(() => {
    for (let i = 1; i <= 200; i++) insert.run(`item-${i}`, createHash('sha256').update(`s${i}`).digest());
  })();
  db.close();

  await fs.mkdir(d.tarred, { recursive: true });
  for (let i = 1; i <= 5; i++) await fs.writeFile(path.join(d.tarred, `sub-${i}.json`), JSON.stringify({ id: i, quota: i * 10 }));
}

export async function makeDrill(opts: DrillOptions = {}): Promise<Drill> {
  const root = await fs.mkdtemp(path.join(tmpdir(), 'azsbackup-engine-'));
  const share = path.join(root, 'share');
  const home = path.join(root, 'home');
  const infra = path.join(root, 'infra');
  await fs.mkdir(share);
  await fs.mkdir(infra);
  const data = { files: path.join(infra, 'files'), db: path.join(infra, 'db.sqlite'), tarred: path.join(infra, 'tarred') };
  const cli = (args: string[], o?: CliOptions) => runCli(home, args, o);

  const drill: Drill = {
    root,
    share,
    home,
    ...data,
    decryptArgs() {
      if (drill.key) return { args: ['-EncryptionKey', '-'], stdin: `${drill.key}\n` };
      return { args: ['-DecryptionCertPath', drill.pfx!, '-DecryptionCertPassword', '-'], stdin: `${drill.pfxPassword}\n` };
    },
    cli,
    async register(name, args) {
      expectOk(await cli(['Register-InfrastructureRole', '-Name', name, ...args]), `Register-InfrastructureRole ${name}`);
    },
    async registerCommand(name, exportArgv, importArgv, extra = []) {
      await drill.register(name, [
        '-Provider',
        'command',
        ...commandArgs('ExportCommand', exportArgv),
        ...commandArgs('ImportCommand', importArgv),
        ...extra,
      ]);
    },
    async backup(args = []) {
      const r = expectOk(await cli(['Start-InfrastructureBackup', ...args]), 'Start-InfrastructureBackup');
      return r.json;
    },
    async backupFolder(name) {
      for (const stamp of await fs.readdir(path.join(share, 'MASBackup'))) {
        const folder = path.join(share, 'MASBackup', stamp, name);
        if (
          await fs.stat(folder).then(
            () => true,
            () => false,
          )
        )
          return folder;
      }
      throw new Error(`backup ${name} is not on the share`);
    },
    async cleanup() {
      await fs.rm(root, { recursive: true, force: true });
    },
  };

  try {
    await writeSampleData(data, opts.bigFileBytes ?? 0);
    const retention = String(opts.retentionDays ?? 7);
    if ((opts.encryption ?? 'key') === 'key') {
      const made = expectOk(await cli(['New-EncryptionKey']), 'New-EncryptionKey').json;
      drill.key = made.Key;
      drill.keyId = made.KeyId;
      expectOk(
        await cli(['Set-BackupShare', '-Path', share, '-EncryptionKey', '-', '-BackupRetentionPeriodInDays', retention], {
          stdin: `${drill.key}\n`,
        }),
        'Set-BackupShare',
      );
    } else {
      drill.cer = path.join(root, 'backup.cer');
      drill.pfx = path.join(root, 'backup.pfx');
      drill.pfxPassword = `pfx-${path.basename(root)}`;
      expectOk(
        await cli(['New-EncryptionKey', '-Certificate', '-CertificatePath', drill.cer, '-PfxPath', drill.pfx, '-PfxPassword', '-'], {
          stdin: `${drill.pfxPassword}\n`,
        }),
        'New-EncryptionKey -Certificate',
      );
      // The .pfx is given once, as the operator's guide says, so that backups prove who made them.
      expectOk(
        await cli(
          [
            'Set-BackupShare',
            '-Path',
            share,
            '-EncryptionCertPath',
            drill.cer,
            '-DecryptionCertPath',
            drill.pfx,
            '-DecryptionCertPassword',
            '-',
            '-BackupRetentionPeriodInDays',
            retention,
          ],
          { stdin: `${drill.pfxPassword}\n` },
        ),
        'Set-BackupShare',
      );
    }
    if (opts.roles ?? true) {
      await drill.register('Files', ['-Provider', 'directory', '-Path', data.files, '-RestoreOrder', '10']);
      await drill.register('Db', ['-Provider', 'sqlite', '-DatabasePath', data.db, '-RestoreOrder', '20']);
      await drill.registerCommand(
        'Tarred',
        ['tar', '-C', data.tarred, '-cf', '-', '.'],
        ['tar', '-C', data.tarred, '-xpf', '-'],
        ['-RestoreOrder', '30'],
      );
    }
  } catch (e) {
    await drill.cleanup();
    throw e;
  }
  return drill;
}

/** A fresh, empty AZSBACKUP_HOME beside the drill: the "redeployed machine". */
export async function freshHome(drill: Drill): Promise<string> {
  return fs.mkdtemp(path.join(drill.root, 'fresh-home-'));
}

/** The processes whose command line holds `marker`, one `<pid> <command line>` a line ('' when none). */
export function processesWith(marker: string): string {
  try {
    return execFileSync('pgrep', ['-af', marker], { encoding: 'utf8' });
  } catch {
    return ''; // pgrep exits 1 when there are none
  }
}

/** The pid of a process that has already exited: a lock naming it is stale. */
export async function deadPid(): Promise<number> {
  const child = execa('true');
  const pid = child.pid!;
  await child;
  return pid;
}

/**
 * Waits until `seen` holds while `child` (from spawnCli) runs; fails if the child ends first or
 * `seen` never holds within `timeoutMs`.
 */
export async function whileRunning(
  child: ResultPromise<{ reject: false }>,
  what: string,
  seen: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  let ended = false;
  void child.finally(() => {
    ended = true;
  });
  const deadline = Date.now() + timeoutMs;
  while (!(await seen())) {
    if (ended) throw new Error(`the command ended before ${what}: ${String((await child).stderr)}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
}

/** kill -9 of `child` the moment `seen` holds (see whileRunning); resolves once it has died of it. */
export async function killWhen(
  child: ResultPromise<{ reject: false }>,
  what: string,
  seen: () => Promise<boolean>,
  timeoutMs?: number,
): Promise<void> {
  await whileRunning(child, what, seen, timeoutMs);
  child.kill('SIGKILL');
  const r = await child;
  if (r.signal !== 'SIGKILL') throw new Error(`the command was not killed but ended ${String(r.exitCode)}`);
}

/**
 * Makes the backups of the calling test file full copies (format 2, `<Role>.azsrole`), as before the
 * deduplicating repository: for the tests of that format, which a location may still hold and
 * every version must still read. Call at the top of a describe block.
 */
export function fullCopyBackups(): void {
  const was = process.env.AZSBACKUP_STORE;
  beforeAll(() => {
    process.env.AZSBACKUP_STORE = 'full-copy';
  });
  afterAll(() => {
    if (was === undefined) delete process.env.AZSBACKUP_STORE;
    else process.env.AZSBACKUP_STORE = was;
  });
}
