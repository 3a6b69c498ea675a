import { usageError } from '../errors.js';

/**
 * Turns a `postgresql://user:password@host:port/database?sslmode=...` URI into libpq environment
 * variables, so pg_dump and pg_restore connect without the password ever being on an argv (which
 * any local user can read in /proc).
 */

export interface PgConnection {
  /** Environment for the child: our variables, and the other PG* ones cleared so the URI is authoritative. */
  env: Record<string, string | undefined>;
  database: string;
  /** The URI without its password, for status lines and messages. */
  display: string;
}

/** libpq URI query parameters we pass on, and the variable each becomes. */
const QUERY_TO_ENV: Record<string, string> = {
  host: 'PGHOST',
  hostaddr: 'PGHOSTADDR',
  port: 'PGPORT',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  dbname: 'PGDATABASE',
  passfile: 'PGPASSFILE',
  options: 'PGOPTIONS',
  application_name: 'PGAPPNAME',
  sslmode: 'PGSSLMODE',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslrootcert: 'PGSSLROOTCERT',
  sslcrl: 'PGSSLCRL',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  gssencmode: 'PGGSSENCMODE',
  channel_binding: 'PGCHANNELBINDING',
};

/** Inherited variables that would silently change where we connect. */
const CLEARED = [
  'PGHOST',
  'PGHOSTADDR',
  'PGPORT',
  'PGUSER',
  'PGPASSWORD',
  'PGDATABASE',
  'PGSERVICE',
  'PGSERVICEFILE',
  'PGOPTIONS',
  'PGSSLMODE',
  'PGTARGETSESSIONATTRS',
];

const HINT =
  'Give the connection string as postgresql://user@host:port/database, without the password, and the password with -DatabasePassword (it is sealed).';

function bad(message: string): never {
  // The string may hold a password: never echo it back.
  throw usageError(message, 'PostgresConnectionStringInvalid', null, HINT);
}

export function parseConnectionString(uri: string): PgConnection {
  if (!/^postgres(ql)?:\/\//i.test(uri)) bad('The PostgreSQL connection string must start with postgresql:// or postgres://.');
  // Several hosts (h1,h2) are legal in libpq but not in a URL parser; say so rather than guess.
  const authority = uri.replace(/^postgres(ql)?:\/\//i, '').split(/[/?]/)[0] ?? '';
  if (authority.slice(authority.lastIndexOf('@') + 1).includes(','))
    bad('Connection strings with several hosts are not supported; give one host.');
  let url: URL;
  try {
    // A non-special scheme keeps an empty host (postgresql:///db?host=/run/postgresql) intact.
    url = new URL(uri);
  } catch {
    bad('The PostgreSQL connection string is not a valid URI.');
  }
  const env: Record<string, string | undefined> = {};
  for (const k of CLEARED) env[k] = undefined;
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      bad('The PostgreSQL connection string has an invalid percent-encoding.');
    }
  };
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host) env.PGHOST = decode(host);
  if (url.port) env.PGPORT = url.port;
  if (url.username) env.PGUSER = decode(url.username);
  if (url.password) env.PGPASSWORD = decode(url.password);
  const dbPath = url.pathname.replace(/^\//, '');
  if (dbPath.includes('/')) bad('The database name in the connection string contains a slash.');
  if (dbPath) env.PGDATABASE = decode(dbPath);
  for (const [key, value] of url.searchParams) {
    const name = QUERY_TO_ENV[key];
    if (!name) bad(`The connection string parameter '${key}' is not supported; supported: ${Object.keys(QUERY_TO_ENV).join(', ')}.`);
    env[name] = value;
  }
  const database = env.PGDATABASE ?? env.PGUSER;
  if (!database) bad('The connection string names no database (and no user to default it to).');
  env.PGDATABASE = database;
  const hostPart = url.host || encodeURIComponent(env.PGHOST ?? '');
  const display = `postgresql://${env.PGUSER ? `${encodeURIComponent(env.PGUSER)}@` : ''}${hostPart}/${encodeURIComponent(database)}`;
  return { env, database, display };
}

/**
 * The connection string with `password` put in, as pg_dump and pg_restore are to get it: in its
 * authority, or in its query where it names no host there (postgresql:///db?host=/run/postgresql),
 * since a URL without a host cannot hold a password and setting one is silently ignored.
 */
export function withPassword(uri: string, password: string): string {
  const url = new URL(uri);
  if (url.host) url.password = encodeURIComponent(password);
  else url.search = `${url.search ? `${url.search}&` : '?'}password=${encodeURIComponent(password)}`;
  return url.toString();
}

/** The connection string with its password taken out (withPassword's either way), as a backup records it. */
export function withoutPassword(uri: string): string {
  const url = new URL(uri);
  url.password = '';
  // Taken out as text, so the rest of the query reads as it was registered.
  if (url.search) {
    url.search = url.search
      .slice(1)
      .split('&')
      .filter((pair) => !new URLSearchParams(pair).has('password'))
      .join('&');
  }
  return url.toString();
}

/**
 * A connection string as the catalog may keep it: without a password, which -DatabasePassword
 * gives and the configuration seals. The string itself is stored and shown as it is.
 */
export function assertNoPassword(uri: string): void {
  const { env } = parseConnectionString(uri);
  if (env.PGPASSWORD !== undefined) {
    throw usageError(
      'The PostgreSQL connection string holds a password; it would be stored and shown in clear. The command line was not saved.',
      'PostgresPasswordInConnectionString',
      null,
      'Give the connection string without the password (postgresql://user@host:port/database) and the password with -DatabasePassword, ' +
        'which is sealed.',
    );
  }
}
