import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';
import { findPostgresBin, startPostgres, type TestPostgres } from '../support/postgres.js';

/**
 * Restore-AzsBackup of a postgres role registered with -DatabasePassword printed that password in
 * clear: each result's Destination was the role's connection string with the sealed password put
 * back into it (as pg_restore needs it), so the password reached the console, the PowerShell
 * pipeline and whatever logs the restore's output.
 */
describe.skipIf(!findPostgresBin())('the restore result of a postgres role with a sealed password', () => {
  let pg: TestPostgres;
  let d: Drill;
  let backup: { Name: string };
  let uri: string;
  beforeAll(async () => {
    pg = await startPostgres();
    await pg.createDatabase('identity');
    await pg.sql('identity', 'CREATE TABLE users (id int PRIMARY KEY, name text);');
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

  it('names the database without the password', async () => {
    const { args, stdin } = d.decryptArgs();
    const r = expectOk(await d.cli(['Restore-AzsBackup', '-Name', backup.Name, ...args], { stdin }));
    const [result] = [r.json].flat() as { Status: string; Destination: string }[];
    expect(result!.Status).toBe('Succeeded');
    expect(result!.Destination).toBe(uri);
    expect(r.stdout + r.stderr).not.toContain(pg.password);
  });
});
