import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProvider } from '../../src/providers/index.js';
import { parseConnectionString } from '../../src/providers/pgconn.js';
import { validateRole } from '../../src/providers/validate.js';
import { exportAll } from '../support/provider-fixtures.js';

describe('parseConnectionString', () => {
  it('maps the URI to libpq variables and clears inherited ones', () => {
    const c = parseConnectionString('postgresql://backup%40ops:p%40ss%2Fw0rd@db.internal:6432/identity?sslmode=require&connect_timeout=5');
    expect(c.env).toMatchObject({
      PGHOST: 'db.internal',
      PGPORT: '6432',
      PGUSER: 'backup@ops',
      PGPASSWORD: 'p@ss/w0rd',
      PGDATABASE: 'identity',
      PGSSLMODE: 'require',
      PGCONNECT_TIMEOUT: '5',
    });
    expect('PGSERVICE' in c.env && c.env.PGSERVICE === undefined).toBe(true);
    expect(c.database).toBe('identity');
    expect(c.display).toBe('postgresql://backup%40ops@db.internal:6432/identity');
    expect(c.display).not.toContain('w0rd');
  });

  it('accepts a socket folder, IPv6 and a database defaulting to the user', () => {
    expect(parseConnectionString('postgresql:///rm?host=/run/postgresql').env).toMatchObject({
      PGHOST: '/run/postgresql',
      PGDATABASE: 'rm',
    });
    expect(parseConnectionString('postgres://u@[::1]:5433').env).toMatchObject({ PGHOST: '::1', PGPORT: '5433', PGDATABASE: 'u' });
  });
});

// The advice of a refused connection string told the operator to write the password into it
// (postgresql://user:password@...), which Register-InfrastructureRole then refuses in turn
// (PostgresPasswordInConnectionString): following one error led straight into the next.
describe('the advice for a refused connection string', () => {
  it.each([
    ['not a URI', 'identity.db'],
    ['several hosts', 'postgresql://u@h1,h2/db'],
    ['an unknown parameter', 'postgresql://u@h/db?sslmodee=require'],
  ])('for %s keeps the password out of it', (_what, uri) => {
    let advice = '';
    try {
      parseConnectionString(uri);
    } catch (e) {
      advice = (e as { recommendedAction: string }).recommendedAction;
    }
    expect(advice).not.toBe('');
    expect(advice).not.toMatch(/user:password@/);
    expect(advice).toMatch(/-DatabasePassword/);
  });

  it('for a postgres role without one keeps the password out of it', () => {
    let advice = '';
    try {
      validateRole({ name: 'Identity', provider: 'postgres', restoreOrder: 1 });
    } catch (e) {
      advice = (e as { recommendedAction: string }).recommendedAction;
    }
    expect(advice).not.toBe('');
    expect(advice).not.toMatch(/user:password@/);
    expect(advice).toMatch(/-DatabasePassword/);
  });
});

describe('postgres provider keeps the password off argv', () => {
  let tmp: string;
  const saved = process.env.AZSBACKUP_PG_BINDIR;
  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-pgfake-'));
    // Stand-ins for pg_dump and pg_restore that record what they were given.
    for (const tool of ['pg_dump', 'pg_restore']) {
      const script = `#!/bin/sh\nprintf '%s\\n' "$@" > "${tmp}/${tool}.argv"\nenv > "${tmp}/${tool}.env"\ncat > /dev/null\nprintf dump\n`;
      await fs.writeFile(path.join(tmp, tool), script, { mode: 0o755 });
    }
    process.env.AZSBACKUP_PG_BINDIR = tmp;
  });
  afterEach(async () => {
    if (saved === undefined) delete process.env.AZSBACKUP_PG_BINDIR;
    else process.env.AZSBACKUP_PG_BINDIR = saved;
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('passes the connection in the environment only', async () => {
    const p = await createProvider({
      name: 'Identity',
      provider: 'postgres',
      restoreOrder: 0,
      connectionString: 'postgresql://azs:S3cret-pw@10.0.0.5:5432/identity',
    });
    expect((await exportAll(p)).toString()).toBe('dump');
    await p.import(Readable.from([Buffer.from('dump')]), { destination: 'identity_copy' });
    for (const tool of ['pg_dump', 'pg_restore']) {
      const argv = await fs.readFile(path.join(tmp, `${tool}.argv`), 'utf8');
      const env = await fs.readFile(path.join(tmp, `${tool}.env`), 'utf8');
      expect(argv).not.toContain('S3cret-pw');
      expect(argv).not.toContain('10.0.0.5');
      expect(env).toContain('PGPASSWORD=S3cret-pw');
      expect(env).toContain('PGHOST=10.0.0.5');
    }
    const restoreArgv = (await fs.readFile(path.join(tmp, 'pg_restore.argv'), 'utf8')).trim().split('\n');
    expect(restoreArgv).toEqual(
      expect.arrayContaining(['--clean', '--if-exists', '--no-owner', '--single-transaction', "--dbname=dbname='identity_copy'"]),
    );
    expect((await fs.readFile(path.join(tmp, 'pg_dump.argv'), 'utf8')).trim().split('\n')).toContain('--format=custom');
  });
});
