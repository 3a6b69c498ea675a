/**
 * A private Samba server for tests: smbd in the foreground, as root, with its own smb.conf and
 * state in a temp folder, listening only on 127.0.0.1 on a free port. Several can run at once.
 */
import { execFile, spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface SambaServer {
  host: '127.0.0.1';
  port: number;
  share: string;
  userName: string;
  password: string;
  /** The shared folder on disk. */
  root: string;
  /** \\127.0.0.1\backups is port 445; tests use smbUrl, which carries the port. */
  unc: string;
  smbUrl: string;
  /** Stops smbd and removes every file of this instance. */
  stop(): Promise<void>;
  /** Stops smbd but keeps its folder, for "server went away" cases. */
  kill(): Promise<void>;
  /** Starts smbd again on the same port and folder after kill(). */
  restart(): Promise<void>;
}

export const SAMBA_TEST_USER = 'azsbackup-test';
const SHARE = 'backups';

function which(cmd: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', ...(process.env.PATH ?? '').split(':')]) {
    try {
      execFileSync('test', ['-x', path.join(dir, cmd)]);
      return path.join(dir, cmd);
    } catch {
      // keep looking
    }
  }
  return undefined;
}

export function sambaAvailable(): boolean {
  return which('smbd') !== undefined && which('smbclient') !== undefined && process.getuid?.() === 0;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function ensureUser(): void {
  try {
    execFileSync('id', ['-u', SAMBA_TEST_USER], { stdio: 'ignore' });
    return;
  } catch {
    // not there yet
  }
  try {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', SAMBA_TEST_USER], { stdio: 'pipe' });
  } catch (e) {
    // Another test worker may have created it at the same moment.
    execFileSync('id', ['-u', SAMBA_TEST_USER], { stdio: 'ignore' });
    void e;
  }
}

/**
 * Listening is not serving: an smbd started again on the folder of one just killed has been seen to
 * accept a connection and drop it while the share was opened (NT_STATUS_CONNECTION_DISCONNECTED),
 * failing the first command of a test. Ready is when a real smbclient lists the share.
 */
async function untilShareAnswers(port: number, authFile: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) =>
      execFile(
        'smbclient',
        [`//127.0.0.1/${SHARE}`, '-p', String(port), '-A', authFile, '-m', 'SMB3', '-c', 'ls'],
        { timeout: 10_000 },
        (e) => resolve(e === null),
      ),
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`smbd on port ${port} listens but does not serve the share ${SHARE}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function waitForPort(port: number, proc: ChildProcess, log: () => Promise<string>, server: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${server} exited (${proc.exitCode ?? proc.signalCode}) before listening on ${port}:\n${await log()}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${server} did not listen on 127.0.0.1:${port} within 20 s:\n${await log()}`);
}

async function killGroup(proc: ChildProcess): Promise<void> {
  if (proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  try {
    process.kill(-proc.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-proc.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
  }, 3000);
  await exited;
  clearTimeout(timer);
  // Per-connection children share the group; make sure none outlives the parent.
  try {
    process.kill(-proc.pid, 'SIGKILL');
  } catch {
    // none left
  }
}

/**
 * Starts a test server detached (the leader of its own process group) with its output appended to
 * `logPath`, and resolves once it listens on 127.0.0.1:`port`. If the test process ends without
 * stopping it (a crash, a timeout), the server and its children go along.
 */
export async function startServerProcess(
  file: string,
  args: string[],
  opts: { env: Record<string, string>; logPath: string; port: number; server: string },
): Promise<ChildProcess> {
  const out = await fs.open(opts.logPath, 'a');
  const proc = spawn(file, args, { detached: true, stdio: ['ignore', out.fd, out.fd], env: opts.env });
  await out.close();
  proc.unref();
  const pid = proc.pid;
  const reap = () => {
    try {
      if (pid !== undefined) process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', reap);
  proc.once('exit', () => process.removeListener('exit', reap));
  try {
    await waitForPort(opts.port, proc, () => fs.readFile(opts.logPath, 'utf8').catch(() => '(no log)'), opts.server);
  } catch (e) {
    await killGroup(proc);
    throw e;
  }
  return proc;
}

/**
 * Starts a server with `launch` and returns kill (keeps `base`), restart (launch again) and stop
 * (kill, then remove `base`). A server that does not start leaves no `base` behind.
 */
export async function manageServer(
  base: string,
  launch: () => Promise<ChildProcess>,
): Promise<{ kill(): Promise<void>; restart(): Promise<void>; stop(): Promise<void> }> {
  let proc: ChildProcess | undefined;
  const kill = async () => {
    if (proc) await killGroup(proc);
    proc = undefined;
  };
  try {
    proc = await launch();
  } catch (e) {
    await fs.rm(base, { recursive: true, force: true });
    throw e;
  }
  return {
    kill,
    restart: async () => {
      await kill();
      proc = await launch();
    },
    stop: async () => {
      await kill();
      await fs.rm(base, { recursive: true, force: true });
    },
  };
}

export async function startSamba(opts: { maxDiskSizeMB?: number } = {}): Promise<SambaServer> {
  const smbd = which('smbd');
  const smbpasswd = which('smbpasswd');
  if (!smbd || !smbpasswd || !which('smbclient')) {
    throw new Error('Samba is not installed: run `apt-get install -y samba smbclient` (the SMB tests need smbd, smbpasswd and smbclient).');
  }
  if (process.getuid?.() !== 0) throw new Error('The Samba test server runs smbd as root; run the SMB tests as root.');

  ensureUser();
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-samba-'));
  // smbd serves the share as the test user, who must be able to traverse down to it.
  await fs.chmod(base, 0o711);
  const dirs = Object.fromEntries(
    ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc', 'log'].map((d) => [d, path.join(base, d)]),
  ) as Record<string, string>;
  for (const d of Object.values(dirs)) await fs.mkdir(d, { mode: 0o700 });
  const root = path.join(base, 'share');
  await fs.mkdir(root);
  execFileSync('chown', [`${SAMBA_TEST_USER}:`, root]);

  const port = await freePort();
  const password = `Pw-${randomBytes(9).toString('base64url')} x`;
  const conf = path.join(base, 'smb.conf');
  await fs.writeFile(
    conf,
    [
      '[global]',
      `  smb ports = ${port}`,
      '  interfaces = lo 127.0.0.1',
      '  bind interfaces only = yes',
      '  server role = standalone server',
      '  server min protocol = SMB3',
      '  disable netbios = yes',
      '  passdb backend = tdbsam',
      `  private dir = ${dirs.private}`,
      `  lock directory = ${dirs.lock}`,
      `  state directory = ${dirs.state}`,
      `  cache directory = ${dirs.cache}`,
      `  pid directory = ${dirs.pid}`,
      `  ncalrpc dir = ${dirs.ncalrpc}`,
      `  log file = ${dirs.log}/log.%m`,
      '  usershare path =',
      '  rpc start on demand helpers = no',
      '  load printers = no',
      '  printcap name = /dev/null',
      '  disable spoolss = yes',
      ...(opts.maxDiskSizeMB !== undefined ? [`  max disk size = ${opts.maxDiskSizeMB}`] : []),
      '',
      `[${SHARE}]`,
      `  path = ${root}`,
      '  read only = no',
      `  valid users = ${SAMBA_TEST_USER}`,
      '',
    ].join('\n'),
  );
  // The password goes in on stdin, never on the command line.
  execFileSync(smbpasswd, ['-c', conf, '-a', '-s', SAMBA_TEST_USER], {
    input: `${password}\n${password}\n`,
    stdio: ['pipe', 'ignore', 'pipe'],
  });

  const logPath = path.join(base, 'smbd.out');
  const probeAuth = path.join(base, 'probe.auth');
  await fs.writeFile(probeAuth, `username = ${SAMBA_TEST_USER}\npassword = ${password}\n`, { mode: 0o600 });
  // smbd leads its own process group, so stopping it also stops its per-client children.
  const life = await manageServer(base, async () => {
    const proc = await startServerProcess(smbd, ['--foreground', '--no-process-group', '--debug-stdout', '-s', conf], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      logPath,
      port,
      server: 'smbd',
    });
    await untilShareAnswers(port, probeAuth);
    return proc;
  });

  return {
    host: '127.0.0.1',
    port,
    share: SHARE,
    userName: SAMBA_TEST_USER,
    password,
    root,
    unc: `\\\\127.0.0.1\\${SHARE}`,
    smbUrl: `smb://127.0.0.1:${port}/${SHARE}`,
    ...life,
  };
}
