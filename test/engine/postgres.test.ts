import { promises as fs } from 'node:fs';
import path from 'node:path';
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
});
