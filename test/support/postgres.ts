import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { execa } from 'execa';

/**
 * A throwaway PostgreSQL server for tests: its own cluster in a temp folder, listening only on
 * 127.0.0.1 on a free port, with password (SCRAM) authentication for a test role. Works on a fresh
 * machine where the packages are installed but no cluster runs. PostgreSQL refuses to run as root,
 * so as root the cluster belongs to the `postgres` system user.
 */

export interface TestPostgres {
  /** postgresql://azstest:<password>@127.0.0.1:<port>/azstest */
  connectionString: string;
  port: number;
  user: string;
  password: string;
  /** A connection string for another database on this server. */
  urlFor(database: string): string;
  /** Creates an empty database and returns its connection string. */
  createDatabase(name: string): Promise<string>;
  /** Runs SQL through psql (unaligned, tuples only) and returns its output. */
  sql(database: string, statement: string): Promise<string>;
  stop(): Promise<void>;
}

export function findPostgresBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const v = readdirSync(base)
    .filter((d) => existsSync(path.join(base, d, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))[0];
  return v ? path.join(base, v, 'bin') : undefined;
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = findPostgresBin();
  if (!bin) throw new Error('PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); run: apt-get install -y postgresql');
  const asRoot = process.getuid?.() === 0;
  // As root, run each server program as the postgres system user.
  const asOwner = (file: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];

  const dir = await mkdtemp(path.join(os.tmpdir(), 'azs-pg-'));
  const data = path.join(dir, 'data');
  const user = 'azstest';
  const password = randomBytes(12).toString('base64url');
  const pwfile = path.join(dir, 'pw');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (asRoot) {
    const ids = await execa('id', ['-u', 'postgres'], { reject: false });
    if (ids.exitCode !== 0) throw new Error('Running as root but there is no postgres system user to own the test cluster.');
    const uid = Number(ids.stdout.trim());
    const gid = Number((await execa('id', ['-g', 'postgres'])).stdout.trim());
    await chown(dir, uid, gid);
    await chown(pwfile, uid, gid);
  }
  const port = await freePort();
  const env = { LC_ALL: 'C', LANG: 'C' };
  try {
    const [initFile, initArgs] = asOwner(path.join(bin, 'initdb'), [
      '-D',
      data,
      '-U',
      user,
      `--pwfile=${pwfile}`,
      '--auth-host=scram-sha-256',
      '--auth-local=scram-sha-256',
      '-E',
      'UTF8',
      '--no-sync',
    ]);
    await execa(initFile, initArgs, { env });
    // The port is taken just before start; if another process grabbed it, pg_ctl fails loudly.
    const conf = [
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
    ].join('\n');
    const [appendFile, appendArgs] = asOwner('sh', [
      '-c',
      `printf '%s\\n' "$1" >> "$2"`,
      'sh',
      conf,
      path.join(data, 'postgresql.auto.conf'),
    ]);
    await execa(appendFile, appendArgs);
    const [ctl, ctlArgs] = asOwner(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(dir, 'server.log'), '-w', '-t', '60', 'start']);
    await execa(ctl, ctlArgs, { env });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }

  const urlFor = (db: string): string => `postgresql://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(db)}`;
  const pgEnv = { PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: user, PGPASSWORD: password };
  const sql = async (database: string, statement: string): Promise<string> => {
    const r = await execa(path.join(bin, 'psql'), ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', database, '-c', statement], {
      env: { ...pgEnv, PGDATABASE: database },
    });
    return r.stdout;
  };
  await sql('postgres', `CREATE DATABASE ${user}`);

  let stopped = false;
  // An interrupted test run must not leave a server behind.
  const [ctlStop, ctlStopArgs] = asOwner(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
  const onExit = (): void => {
    if (!stopped) spawnSync(ctlStop, ctlStopArgs, { stdio: 'ignore' });
  };
  process.once('exit', onExit);
  return {
    connectionString: urlFor(user),
    port,
    user,
    password,
    urlFor,
    sql,
    async createDatabase(name: string): Promise<string> {
      await sql('postgres', `CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      return urlFor(name);
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      process.off('exit', onExit);
      await execa(ctlStop, ctlStopArgs, { env, reject: false });
      await rm(dir, { recursive: true, force: true });
    },
  };
}
