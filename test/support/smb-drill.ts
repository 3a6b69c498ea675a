import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expectOk, runCli, type CliOptions, type CliResult } from './cli.js';
import type { SambaServer } from './samba.js';

/**
 * The operator's set-up against a real Samba share, through the public command line: a home with
 * a symmetric key, the share configured with -UserName and the password on stdin, and one
 * directory role. Each drill works in its own folder on the share so several can share a server.
 */

export interface SmbDrill {
  samba: SambaServer;
  root: string;
  home: string;
  /** The directory role's data. */
  files: string;
  key: string;
  keyId: string;
  /** The folder on the share, relative to its root ('' for the root). */
  folder: string;
  /** smb://127.0.0.1:<port>/<share>/<folder> */
  path: string;
  /** The same folder on the Samba server's disk. */
  diskFolder: string;
  cli(args: string[], opts?: CliOptions): Promise<CliResult>;
  /** Runs a command in another home (a "redeployed machine"). */
  cliIn(home: string, args: string[], opts?: CliOptions): Promise<CliResult>;
  /** Set-BackupShare with this drill's path, user and key; `password` defaults to the server's. */
  setShare(extra?: string[], password?: string, userName?: string): Promise<CliResult>;
  backup(args?: string[]): Promise<any>;
  freshHome(): Promise<string>;
  cleanup(): Promise<void>;
}

export interface SmbDrillOptions {
  folder?: string;
  /** Random (incompressible) bytes in the role, in one file. */
  randomBytes?: number;
  /** Skip Set-BackupShare (for tests that configure the share themselves). */
  configure?: boolean;
  retentionDays?: number;
}

export async function makeSmbDrill(samba: SambaServer, opts: SmbDrillOptions = {}): Promise<SmbDrill> {
  const root = await fs.mkdtemp(path.join(tmpdir(), 'azsbackup-smb-drill-'));
  const home = path.join(root, 'home');
  const files = path.join(root, 'files');
  const folder = opts.folder ?? `drill-${randomBytes(4).toString('hex')}`;
  const diskFolder = folder === '' ? samba.root : path.join(samba.root, folder);
  const cli = (args: string[], o?: CliOptions) => runCli(home, args, o);

  await fs.mkdir(path.join(files, 'conf.d'), { recursive: true });
  await fs.writeFile(path.join(files, 'cloud.json'), JSON.stringify({ region: 'smb', scaleUnits: 2 }));
  await fs.writeFile(path.join(files, 'conf.d', 'network.ini'), '[network]\nexternal=10.1.0.0/24\n', { mode: 0o640 });
  await fs.writeFile(path.join(files, 'secret.bin'), randomBytes(4096), { mode: 0o600 });
  if (opts.randomBytes) await writeRandom(path.join(files, 'big.bin'), opts.randomBytes);

  if (folder !== '') {
    // The share's folder exists before the operator points the service at it, as on a real file server.
    await fs.mkdir(diskFolder, { recursive: true });
    await fs.chown(diskFolder, (await fs.stat(samba.root)).uid, (await fs.stat(samba.root)).gid);
  }
  const made = expectOk(await cli(['New-EncryptionKey']), 'New-EncryptionKey').json;
  const drill: SmbDrill = {
    samba,
    root,
    home,
    files,
    folder,
    diskFolder,
    key: made.Key,
    keyId: made.KeyId,
    path: folder === '' ? samba.smbUrl : `${samba.smbUrl}/${folder}`,
    cli,
    cliIn: (h, args, o) => runCli(h, args, o),
    setShare(extra = [], password = samba.password, userName = samba.userName) {
      return cli(
        [
          'Set-BackupShare',
          '-Path',
          drill.path,
          '-UserName',
          userName,
          '-Password',
          '-',
          '-EncryptionKey',
          '-',
          ...(extra.includes('-BackupRetentionPeriodInDays') ? [] : ['-BackupRetentionPeriodInDays', String(opts.retentionDays ?? 2)]),
          ...extra,
        ],
        { stdin: `${password}\n${drill.key}\n` },
      );
    },
    async backup(args = []) {
      return expectOk(await cli(['Start-InfrastructureBackup', ...args], { timeoutMs: 300_000 }), 'Start-InfrastructureBackup').json;
    },
    freshHome: () => fs.mkdtemp(path.join(root, 'fresh-home-')),
    async cleanup() {
      await fs.rm(root, { recursive: true, force: true });
      if (folder !== '') await fs.rm(diskFolder, { recursive: true, force: true });
    },
  };
  try {
    if (opts.configure ?? true) expectOk(await drill.setShare(), 'Set-BackupShare');
    expectOk(
      await cli(['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', files]),
      'Register-InfrastructureRole',
    );
  } catch (e) {
    await drill.cleanup();
    throw e;
  }
  return drill;
}

/** Writes `bytes` random bytes in 1 MiB pieces (random data defeats compression). */
export async function writeRandom(file: string, bytes: number): Promise<void> {
  const handle = await fs.open(file, 'w');
  try {
    for (let left = bytes; left > 0; left -= 1 << 20) await handle.write(randomBytes(Math.min(left, 1 << 20)));
  } finally {
    await handle.close();
  }
}

export { list } from './cli.js';

/** Every partial entry (a `.partial` backup folder, an `.azs-partial-` file) under a folder on disk. */
export async function partialsUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (/partial/.test(e.name)) out.push(path.relative(dir, p));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out;
}
