import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { AzsError, ExitCode } from '../errors.js';
import { exportFromProgram, importIntoProgram, type ProgramSpec } from './child.js';
import { parseConnectionString, type PgConnection } from './pgconn.js';
import type { Provider, ProviderContext, ProviderDescription, RoleDefinition } from './provider.js';

/**
 * A PostgreSQL database through pg_dump (custom format) and pg_restore. The connection reaches the
 * tools only through libpq environment variables, never their argv.
 *
 * pg_restore runs with --single-transaction, so a restore that fails or is cut off half-way is
 * rolled back by the server; the engine should still verify the role file first, because the
 * provider cannot stage (streamsIntoDestination).
 */

type PostgresRole = RoleDefinition & { connectionString: string };

/**
 * The directory holding pg_dump/pg_restore: AZSBACKUP_PG_BINDIR if set, else the newest
 * /usr/lib/postgresql/<version>/bin (Debian's wrappers on PATH may pick an older version than the
 * server), else whatever PATH finds.
 */
export function pgBinDir(): string | undefined {
  const fromEnv = process.env.AZSBACKUP_PG_BINDIR;
  if (fromEnv) return fromEnv;
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(path.join(base, v, 'bin', 'pg_dump')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(base, versions[0], 'bin') : undefined;
}

function tool(name: string): string {
  const dir = pgBinDir();
  return dir ? path.join(dir, name) : name;
}

/** A conninfo naming only the database: unambiguous even for names containing '=' or spaces. */
function dbnameConninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Warnings with which pg_dump leaves part of the database out and still exits 0. */
const DUMP_OMISSIONS = [/^.*subscriptions not dumped because current user is not a superuser.*$/m];

/** The backup is not whole when pg_dump said it left something out: a failure, not a warning nobody reads. */
function dumpOmission(label: string, stderr: string): AzsError | undefined {
  const said = DUMP_OMISSIONS.map((warning) => warning.exec(stderr)?.[0]).find((line) => line !== undefined);
  if (said === undefined) return undefined;
  return new AzsError(`The ${label} left part of the database out, though it exited 0: ${said.trim()}`, {
    errorId: 'PostgresDumpIncomplete',
    category: 'PermissionDenied',
    exitCode: ExitCode.Failure,
    targetObject: label,
    recommendedAction:
      'Back the role up with an account that may read all of the database (its subscriptions need a superuser), or remove what it may not, then run the backup again.',
  });
}

export class PostgresProvider implements Provider {
  readonly streamsIntoDestination = true;
  private readonly conn: PgConnection;

  constructor(private readonly role: PostgresRole) {
    this.conn = parseConnectionString(role.connectionString);
  }

  describe(): ProviderDescription {
    return { provider: 'postgres', source: this.conn.display };
  }

  /** ctx.destination may be another connection string or just another database name. */
  private target(ctx: ProviderContext): PgConnection {
    const d = ctx.destination;
    if (d === undefined) return this.conn;
    if (/^postgres(ql)?:\/\//i.test(d)) return parseConnectionString(d);
    return {
      ...this.conn,
      env: { ...this.conn.env, PGDATABASE: d },
      database: d,
      display: this.conn.display.replace(/\/[^/]*$/, `/${encodeURIComponent(d)}`),
    };
  }

  private spec(argv: string[], conn: PgConnection, which: string, ctx: ProviderContext): ProgramSpec {
    return {
      argv,
      env: { ...conn.env, AZSBACKUP_ROLE: this.role.name },
      timeoutMs: this.role.timeoutSeconds === undefined ? undefined : this.role.timeoutSeconds * 1000,
      signal: ctx.signal,
      errorPrefix: 'PostgresProvider',
      secrets: conn.env.PGPASSWORD ? [conn.env.PGPASSWORD] : [],
      label: `${which} of ${conn.display} (role '${this.role.name}')`,
    };
  }

  async export(ctx: ProviderContext = {}): Promise<Readable> {
    const spec = this.spec([tool('pg_dump'), '--format=custom', '--no-password'], this.conn, 'pg_dump', ctx);
    return exportFromProgram({ ...spec, explainSuccess: (stderr) => dumpOmission(spec.label, stderr) });
  }

  async import(data: Readable, ctx: ProviderContext = {}): Promise<void> {
    const conn = this.target(ctx);
    // A superuser gives every object its owner back. Owned by the restoring superuser instead, a
    // SECURITY DEFINER function would run as a superuser for every caller, and a view would read
    // past row security. Any other account cannot make objects another's: they come back its own.
    const superuser = await restoresAsSuperuser(conn);
    const argv = [
      tool('pg_restore'),
      '--clean',
      '--if-exists',
      ...(superuser ? [] : ['--no-owner']),
      '--single-transaction',
      '--no-password',
      `--dbname=${dbnameConninfo(conn.database)}`,
    ];
    await importIntoProgram(this.spec(argv, conn, 'pg_restore', ctx), data);
  }
}

/**
 * Whether the account of `conn` is a superuser, asked through psql (beside pg_restore); false
 * when it cannot be told (no psql, no answer within 30 s): the restore then keeps --no-owner, as
 * before, and pg_restore says what is wrong with the connection itself.
 */
function restoresAsSuperuser(conn: PgConnection): Promise<boolean> {
  const argv = [
    '-X',
    '-A',
    '-t',
    '--no-password',
    '-c',
    'SELECT rolsuper FROM pg_roles WHERE rolname = current_user',
    `--dbname=${dbnameConninfo(conn.database)}`,
  ];
  return new Promise((resolve) => {
    execFile(tool('psql'), argv, { env: { ...process.env, ...conn.env }, timeout: 30_000 }, (error, stdout) => {
      resolve(!error && stdout.trim() === 't');
    });
  });
}
