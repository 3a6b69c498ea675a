import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, freshHome, makeDrill, runCli, type Drill } from '../support/cli.js';
import { findPostgresBin, startPostgres, type TestPostgres } from '../support/postgres.js';

/**
 * A postgres role registered as the README says, its password sealed with -DatabasePassword:
 * the backup records no password, and the restore on the same machine takes it from there; a
 * redeployed machine gives it the way libpq takes one, a password file.
 */
describe.skipIf(!findPostgresBin())('a postgres role with a sealed password, through the command line', () => {
  let pg: TestPostgres;
  let d: Drill;
  let uri: string;
  let backup: any;
  const rows = () => pg.sql('identity', 'SELECT id, name FROM users ORDER BY id');

  beforeAll(async () => {
    pg = await startPostgres();
    await pg.createDatabase('identity');
    await pg.sql(
      'identity',
      "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 50) AS i;",
    );
    d = await makeDrill({ roles: false });
    uri = `postgresql://${pg.user}@127.0.0.1:${pg.port}/identity`;
    expectOk(
      await d.cli(
        ['Register-InfrastructureRole', '-Name', 'Identity', '-Provider', 'postgres', '-ConnectionString', uri, '-DatabasePassword', '-'],
        { stdin: `${pg.password}\n` },
      ),
    );
    backup = await d.backup();
  }, 120_000);
  afterAll(async () => {
    await d?.cleanup();
    await pg?.stop();
  });

  it('records no password in the backup', async () => {
    expect(backup.Status).toBe('Succeeded');
    const info = await fs.readFile(path.join(await d.backupFolder(backup.Name), 'BackupInfo.xml'), 'utf8');
    expect(info).toContain(`<ConnectionString>${uri}</ConnectionString>`);
    expect(info).not.toContain(pg.password);
  });

  // The result's Destination was once the connection string with the sealed password put back in
  // (as pg_restore needs it): the password reached the console, the pipeline and any log.
  it('restores on the same machine with the password sealed there, and shows the password nowhere', async () => {
    const before = await rows();
    await pg.sql('identity', 'DELETE FROM users WHERE id > 10');
    const { args, stdin } = d.decryptArgs();
    const r = expectOk(await d.cli(['Restore-AzsBackup', '-Name', backup.Name, ...args, '-Verbose'], { stdin }));
    const results = [r.json].flat() as { Status: string; Destination: string }[];
    expect(results.map((x) => x.Status)).toEqual(['Succeeded']);
    expect(results[0]!.Destination).toBe(uri);
    expect(r.stdout + r.stderr).not.toContain(pg.password);
    expect(await rows()).toEqual(before);
  });

  it('on a redeployed machine, with the password in a libpq password file', async () => {
    const before = await rows();
    await pg.sql('identity', 'DELETE FROM users WHERE id > 20');
    const { args, stdin } = d.decryptArgs();
    const home = await freshHome(d);
    const refused = await runCli(home, ['Restore-AzsBackup', '-Name', backup.Name, '-Path', d.share, ...args], {
      stdin,
      env: { PGPASSFILE: path.join(d.root, 'none') },
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/password/);
    const pgpass = path.join(d.root, 'pgpass');
    await fs.writeFile(pgpass, `127.0.0.1:${pg.port}:identity:${pg.user}:${pg.password}\n`, { mode: 0o600 });
    expectOk(
      await runCli(home, ['Restore-AzsBackup', '-Name', backup.Name, '-Path', d.share, ...args], { stdin, env: { PGPASSFILE: pgpass } }),
    );
    expect(await rows()).toEqual(before);
  });

  // A connection string naming its host in the query (postgresql:///db?host=...: the form libpq
  // documents for a socket folder) has no authority a URL can hold a password in: the sealed
  // password was put back into it with URL.password, which such a URL drops without a word, and
  // every backup and restore failed with "no password supplied" though the password was given.
  it('uses the sealed password of a role whose host is given in the query', async () => {
    const byQuery = `postgresql:///identity?host=127.0.0.1&port=${pg.port}&user=${pg.user}`;
    expectOk(
      await d.cli(
        [
          'Register-InfrastructureRole',
          '-Name',
          'IdentityByQuery',
          '-Provider',
          'postgres',
          '-ConnectionString',
          byQuery,
          '-DatabasePassword',
          '-',
        ],
        { stdin: `${pg.password}\n` },
      ),
    );
    const noPassFile = { PGPASSFILE: path.join(d.root, 'none') };
    const made = await d.cli(['Start-InfrastructureBackup', '-RoleName', 'IdentityByQuery'], { env: noPassFile });
    expect(made.stdout + made.stderr).not.toMatch(/no password supplied/);
    const saved = expectOk(made).json;
    expect(saved.Status).toBe('Succeeded');
    const info = await fs.readFile(path.join(await d.backupFolder(saved.Name), 'BackupInfo.xml'), 'utf8');
    expect(info).not.toContain(pg.password);

    const before = await rows();
    await pg.sql('identity', 'DELETE FROM users WHERE id > 30');
    const { args, stdin } = d.decryptArgs();
    const r = expectOk(await d.cli(['Restore-AzsBackup', '-Name', saved.Name, ...args, '-Verbose'], { stdin, env: noPassFile }));
    const results = [r.json].flat() as { Status: string; Destination: string }[];
    expect(results.map((x) => x.Status)).toEqual(['Succeeded']);
    expect(r.stdout + r.stderr).not.toContain(pg.password);
    expect(await rows()).toEqual(before);
    expectOk(await d.cli(['Unregister-InfrastructureRole', '-Name', 'IdentityByQuery']));
  });

  // pg_dump run by an account that is not a superuser (the database's owner, as OPERATIONS.md
  // advises) leaves the database's subscriptions out with only a warning on stderr and exits 0:
  // the backup Succeeded, and a restore brought the database back without its replication.
  it('a backup that pg_dump made without part of the database (its subscriptions) fails and says what is missing', async () => {
    const ownerPassword = 'owner-pw-5Xq';
    await pg.sql('postgres', `CREATE ROLE replowner LOGIN PASSWORD '${ownerPassword}'`);
    await pg.sql('postgres', 'CREATE DATABASE replicated OWNER replowner');
    await pg.sql('replicated', 'SET ROLE replowner; CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2);');
    await pg.sql(
      'replicated',
      "CREATE SUBSCRIPTION upstream CONNECTION 'host=127.0.0.1 port=1 dbname=none' PUBLICATION items WITH (connect = false)",
    );
    const replicated = `postgresql://replowner@127.0.0.1:${pg.port}/replicated`;
    expectOk(
      await d.cli(
        [
          'Register-InfrastructureRole',
          '-Name',
          'Replicated',
          '-Provider',
          'postgres',
          '-ConnectionString',
          replicated,
          '-DatabasePassword',
          '-',
        ],
        { stdin: `${ownerPassword}\n` },
      ),
    );
    try {
      const r = await d.cli(['Start-InfrastructureBackup', '-RoleName', 'Replicated']);
      expect(r.code).not.toBe(0);
      expect(r.errors[0]?.Message ?? r.stderr).toMatch(/subscriptions not dumped/);
      expect(r.stdout + r.stderr).not.toContain(ownerPassword);
    } finally {
      expectOk(await d.cli(['Unregister-InfrastructureRole', '-Name', 'Replicated']));
      await pg.sql('replicated', 'ALTER SUBSCRIPTION upstream SET (slot_name = NONE)');
      await pg.sql('replicated', 'DROP SUBSCRIPTION upstream');
    }
  });

  // A failing pg_restore repeats the statement that failed ("Command was: ..."), and a user mapping
  // of postgres_fdw carries the remote password as OPTIONS (password '...'), a form the stderr
  // redaction did not know: a restore that missed the mapping's role (as a new server does, until
  // its roles are made) put the foreign server's password into the error, the job record and alerts.
  it("a failed restore does not repeat a user mapping's password from pg_restore's stderr", async () => {
    const remotePassword = 'fdw-remote-Secret-42';
    await pg.createDatabase('federated');
    await pg.sql('postgres', 'CREATE ROLE reporting');
    await pg.sql(
      'federated',
      [
        'CREATE EXTENSION postgres_fdw',
        "CREATE SERVER warehouse FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'warehouse.invalid', dbname 'dw')",
        `CREATE USER MAPPING FOR reporting SERVER warehouse OPTIONS (user 'reader', password '${remotePassword}')`,
        'CREATE TABLE facts (id int PRIMARY KEY)',
      ].join('; '),
    );
    const federated = `postgresql://${pg.user}@127.0.0.1:${pg.port}/federated`;
    expectOk(
      await d.cli(
        [
          'Register-InfrastructureRole',
          '-Name',
          'Federated',
          '-Provider',
          'postgres',
          '-ConnectionString',
          federated,
          '-DatabasePassword',
          '-',
        ],
        { stdin: `${pg.password}\n` },
      ),
    );
    try {
      const made = await d.backup(['-RoleName', 'Federated']);
      await pg.sql('federated', 'DROP USER MAPPING FOR reporting SERVER warehouse');
      await pg.sql('postgres', 'DROP ROLE reporting');
      const { args, stdin } = d.decryptArgs();
      const r = await d.cli(['Restore-AzsBackup', '-Name', made.Name, '-RoleName', 'Federated', ...args, '-Force'], { stdin });
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/role \\?"reporting\\?" does not exist/);
      expect(r.stdout + r.stderr).not.toContain(remotePassword);
      // Nor anything this machine keeps: job records, alerts, logs.
      const kept = await fs.readdir(d.home, { recursive: true, withFileTypes: true });
      for (const f of kept.filter((e) => e.isFile())) {
        expect(await fs.readFile(path.join(f.parentPath, f.name), 'latin1'), path.join(f.parentPath, f.name)).not.toContain(remotePassword);
      }
    } finally {
      expectOk(await d.cli(['Unregister-InfrastructureRole', '-Name', 'Federated']));
    }
  });

  // pg_restore ran with --no-owner whatever the account: restored by a superuser (the cluster's
  // postgres account, as a redeployed machine often restores), every object came back owned by it,
  // so a SECURITY DEFINER function that ran as its unprivileged owner now ran as a superuser for
  // every caller (EXECUTE is PUBLIC's by default), and a view over a table with row security
  // bypassed it. A superuser restore gives each object its owner back.
  it('a superuser restore gives every object its owner back, so a SECURITY DEFINER function does not run as the superuser', async () => {
    await pg.createDatabase('tenants');
    await pg.sql('postgres', "CREATE ROLE app LOGIN PASSWORD 'app-pass-1'");
    await pg.sql(
      'tenants',
      [
        'GRANT ALL ON SCHEMA public TO app',
        'SET ROLE app',
        'CREATE TABLE accounts (id int PRIMARY KEY)',
        "CREATE FUNCTION whoami() RETURNS text SECURITY DEFINER LANGUAGE sql AS 'SELECT current_user::text'",
        'RESET ROLE',
      ].join('; '),
    );
    const owners = () =>
      pg.sql(
        'tenants',
        "SELECT 'accounts=' || tableowner FROM pg_tables WHERE tablename = 'accounts' UNION ALL SELECT 'whoami=' || whoami()",
      );
    const before = await owners();
    expect(before).toContain('accounts=app');
    expect(before).toContain('whoami=app');
    const tenants = `postgresql://${pg.user}@127.0.0.1:${pg.port}/tenants`;
    expectOk(
      await d.cli(
        [
          'Register-InfrastructureRole',
          '-Name',
          'Tenants',
          '-Provider',
          'postgres',
          '-ConnectionString',
          tenants,
          '-DatabasePassword',
          '-',
        ],
        {
          stdin: `${pg.password}\n`,
        },
      ),
    );
    try {
      const made = await d.backup(['-RoleName', 'Tenants']);
      await pg.sql('tenants', 'DROP FUNCTION whoami(); DROP TABLE accounts');
      const { args, stdin } = d.decryptArgs();
      expectOk(await d.cli(['Restore-AzsBackup', '-Name', made.Name, '-RoleName', 'Tenants', ...args, '-Force'], { stdin }));
      expect(await owners()).toBe(before);
    } finally {
      expectOk(await d.cli(['Unregister-InfrastructureRole', '-Name', 'Tenants']));
    }
  });

  // PostgreSQL quotes table data in its errors ("DETAIL: Failing row contains (...)", "CONTEXT:
  // COPY t, line 1: ..."), which went into the error, the job record and alerts (sent to webhooks)
  // with the rows of a restore that failed. Here a CHECK constraint's function was changed after
  // the rows went in, so the restore's COPY meets a row the constraint now refuses.
  it('a failed restore does not repeat the table rows PostgreSQL quotes in its errors', async () => {
    const rowSecret = 'row-Secret-Data-7731';
    await pg.createDatabase('ledger');
    await pg.sql(
      'ledger',
      [
        "CREATE FUNCTION small(x int) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT x < 100'",
        'CREATE TABLE entries (amount int CHECK (small(amount)), note text)',
        `INSERT INTO entries VALUES (50, '${rowSecret}')`,
        "CREATE OR REPLACE FUNCTION small(x int) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT x < 10'",
      ].join('; '),
    );
    const ledger = `postgresql://${pg.user}@127.0.0.1:${pg.port}/ledger`;
    expectOk(
      await d.cli(
        ['Register-InfrastructureRole', '-Name', 'Ledger', '-Provider', 'postgres', '-ConnectionString', ledger, '-DatabasePassword', '-'],
        {
          stdin: `${pg.password}\n`,
        },
      ),
    );
    try {
      const made = await d.backup(['-RoleName', 'Ledger']);
      const { args, stdin } = d.decryptArgs();
      const r = await d.cli(['Restore-AzsBackup', '-Name', made.Name, '-RoleName', 'Ledger', ...args, '-Force'], { stdin });
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/violates check constraint/);
      expect(r.stdout + r.stderr).toMatch(/Failing row contains \(…\)/);
      expect(r.stdout + r.stderr).not.toContain(rowSecret);
      const kept = await fs.readdir(d.home, { recursive: true, withFileTypes: true });
      for (const f of kept.filter((e) => e.isFile())) {
        expect(await fs.readFile(path.join(f.parentPath, f.name), 'latin1'), path.join(f.parentPath, f.name)).not.toContain(rowSecret);
      }
    } finally {
      expectOk(await d.cli(['Unregister-InfrastructureRole', '-Name', 'Ledger']));
    }
  });

  // pg_dump and pg_restore wait for table locks without end: a transaction left open on the
  // database held a scheduled backup (and the job lock, so every restore behind it) for good. The
  // provider took a time limit, but Register-InfrastructureRole gave -TimeoutSeconds to command
  // roles only.
  it('a time limit ends a pg_dump and a pg_restore that wait on a lock, and the restore changes nothing', async () => {
    await pg.createDatabase('billing');
    await pg.sql('billing', 'CREATE TABLE invoices (id int PRIMARY KEY); INSERT INTO invoices SELECT generate_series(1, 5);');
    const billing = `postgresql://${pg.user}@127.0.0.1:${pg.port}/billing`;
    expectOk(
      await d.cli(
        [
          'Register-InfrastructureRole',
          '-Name',
          'Billing',
          '-Provider',
          'postgres',
          '-ConnectionString',
          billing,
          '-DatabasePassword',
          '-',
        ],
        { stdin: `${pg.password}\n` },
      ),
    );
    const good = await d.backup(['-RoleName', 'Billing']);
    expectOk(
      await d.cli(
        [
          ...['Register-InfrastructureRole', '-Name', 'Billing', '-Provider', 'postgres', '-ConnectionString', billing],
          ...['-TimeoutSeconds', '3'],
          ...['-DatabasePassword', '-', '-Force'],
        ],
        { stdin: `${pg.password}\n` },
      ),
    );
    await pg.sql('billing', 'DELETE FROM invoices WHERE id > 2');
    const holder = execa(path.join(findPostgresBin()!, 'psql'), ['-X', '-q', '-d', 'billing'], {
      env: { PGHOST: '127.0.0.1', PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password },
      stdin: 'pipe',
      reject: false,
    });
    holder.stdin!.write('BEGIN; LOCK TABLE invoices IN ACCESS EXCLUSIVE MODE;\n');
    try {
      const held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'invoices' AND l.granted";
      while ((await pg.sql('billing', held)) === '0') await new Promise((resolve) => setTimeout(resolve, 100));
      const backup = await d.cli(['Start-InfrastructureBackup', '-RoleName', 'Billing'], { timeoutMs: 40_000 });
      expect(backup.code).not.toBe(0);
      expect(backup.stdout + backup.stderr).toMatch(/time limit of 3 s/);
      const { args, stdin } = d.decryptArgs();
      const restore = await d.cli(['Restore-AzsBackup', '-Name', good.Name, '-RoleName', 'Billing', ...args, '-Force'], {
        stdin,
        timeoutMs: 40_000,
      });
      expect(restore.code).not.toBe(0);
      expect(restore.errors[0]).toMatchObject({ ErrorId: 'PostgresProviderTimeout' });
    } finally {
      holder.stdin!.end('ROLLBACK;\n');
      await holder;
    }
    expect(await pg.sql('billing', 'SELECT count(*) FROM invoices')).toBe('2');
  });
});
