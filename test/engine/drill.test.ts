import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbRows, expectOk, fingerprint, freshHome, makeDrill, runCli, type Drill, list } from '../support/cli.js';
import { Database } from '../support/provider-fixtures.js';

/**
 * The operator's drill through the real command line: back up, lose everything, restore on a
 * machine that has only the share address and the key, and get every byte back.
 */

const asRoot = process.getuid?.() === 0;

describe('backup and restore drill', () => {
  let d: Drill;
  let log: string;
  let first: any;
  let before: { files: string; db: unknown[]; tarred: string };

  beforeAll(async () => {
    d = await makeDrill();
    log = path.join(d.root, 'restore-order.log');
    // Alphabetical order (Alpha, Beta) disagrees with RestoreOrder (Beta 40, Alpha 50) on purpose.
    const appender = (name: string) => ['sh', '-c', `cat >/dev/null; echo ${name} >> '${log}'`];
    await d.registerCommand('Alpha', ['echo', 'alpha data'], appender('Alpha'), ['-RestoreOrder', '50']);
    await d.registerCommand('Beta', ['echo', 'beta data'], appender('Beta'), ['-RestoreOrder', '40']);
    // The database belongs to its service: on a fresh machine it must come back the same.
    await fs.chmod(d.db, 0o640);
    if (asRoot) await fs.chown(d.db, 1234, 4321);
    before = { files: fingerprint(d.files), db: dbRows(d.db), tarred: fingerprint(d.tarred) };
    first = await d.backup();
  });
  afterAll(async () => d?.cleanup());

  it('backs up every role and reports it Succeeded', () => {
    expect(first.Status).toBe('Succeeded');
    expect(first.Name).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.EncryptionKeyId).toBe(d.keyId);
    expect(first.RoleStatus.map((r: any) => [r.RoleName, r.Status]).sort()).toEqual([
      ['Alpha', 'Succeeded'],
      ['Beta', 'Succeeded'],
      ['Db', 'Succeeded'],
      ['Files', 'Succeeded'],
      ['Tarred', 'Succeeded'],
    ]);
  });

  it('restores every role byte for byte on a fresh machine, in RestoreOrder', async () => {
    // Disaster: the role data and the service's own configuration are gone.
    await fs.rm(d.files, { recursive: true, force: true });
    for (const f of [d.db, `${d.db}-wal`, `${d.db}-shm`]) await fs.rm(f, { force: true });
    await fs.rm(d.tarred, { recursive: true, force: true });
    await fs.mkdir(d.tarred); // a redeployed machine has the empty folder the tar role extracts into
    const home = await freshHome(d);

    const { args, stdin } = d.decryptArgs();
    const r = expectOk(
      await runCli(home, ['Restore-AzsBackup', '-Name', first.Name, '-Path', d.share, ...args], { stdin }),
      'Restore-AzsBackup',
    );
    const results = list(r.json);
    expect(results.map((x) => [x.RoleName, x.Status])).toEqual([
      ['Files', 'Succeeded'],
      ['Db', 'Succeeded'],
      ['Tarred', 'Succeeded'],
      ['Beta', 'Succeeded'],
      ['Alpha', 'Succeeded'],
    ]);
    expect(r.errors).toEqual([]);

    expect(fingerprint(d.files)).toBe(before.files);
    expect(fingerprint(d.files)).toContain('L current.ini -> conf.d/network.ini');
    expect(fingerprint(d.files)).toMatch(/F private\/ca.key 600 1614834367 /);
    expect(dbRows(d.db)).toEqual(before.db);
    const db = await fs.stat(d.db);
    expect(db.mode & 0o7777).toBe(0o640);
    if (asRoot) expect([db.uid, db.gid]).toEqual([1234, 4321]);
    expect(fingerprint(d.tarred)).toBe(before.tarred);
    expect(await fs.readFile(log, 'utf8')).toBe('Beta\nAlpha\n');
  });

  it('-RoleName restores only that role and leaves the others as they are', async () => {
    await fs.writeFile(path.join(d.files, 'cloud.json'), 'changed since the backup');
    await fs.writeFile(path.join(d.tarred, 'sub-1.json'), 'changed too');
    const db = new Database(d.db);
    db.exec("DELETE FROM items WHERE id > 100; UPDATE items SET name = 'edited' WHERE id = 1");
    db.close();
    const filesNow = fingerprint(d.files);
    const tarredNow = fingerprint(d.tarred);
    const logNow = await fs.readFile(log, 'utf8');

    const { args, stdin } = d.decryptArgs();
    const r = expectOk(
      await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', first.Name, '-Path', d.share, '-RoleName', 'db', ...args], { stdin }),
    );
    expect(list(r.json).map((x) => [x.RoleName, x.Status])).toEqual([['Db', 'Succeeded']]);
    expect(dbRows(d.db)).toEqual(before.db);
    expect(fingerprint(d.files)).toBe(filesNow);
    expect(fingerprint(d.tarred)).toBe(tarredNow);
    expect(await fs.readFile(log, 'utf8')).toBe(logNow);
  });

  it('a role the backup does not hold is refused before anything is restored', async () => {
    const filesNow = fingerprint(d.files);
    const { args, stdin } = d.decryptArgs();
    const r = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', first.Name, '-Path', d.share, '-RoleName', 'Nope', ...args], {
      stdin,
    });
    expect(r.code).toBe(10);
    expect(r.errors[0]?.ErrorId).toBe('RoleNotInBackup');
    expect(fingerprint(d.files)).toBe(filesNow);
  });

  it('Get-InfrastructureBackup lists backups newest first, with -Top and -Skip', async () => {
    const second = await d.backup();
    const third = await d.backup();
    const all = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(all.map((b) => b.Name)).toEqual([third.Name, second.Name, first.Name]);
    expect(all.every((b) => b.Status === 'Succeeded' && b.IsCloudRecoveryReady === true)).toBe(true);
    expect(all[2].RoleStatus).toHaveLength(5);

    expect(list(expectOk(await d.cli(['Get-InfrastructureBackup', '-Top', '1'])).json).map((b) => b.Name)).toEqual([third.Name]);
    expect(list(expectOk(await d.cli(['Get-InfrastructureBackup', '-Skip', '1', '-Top', '1'])).json).map((b) => b.Name)).toEqual([
      second.Name,
    ]);
    expect(list(expectOk(await d.cli(['Get-InfrastructureBackup', '-Skip', '2'])).json).map((b) => b.Name)).toEqual([first.Name]);
    expect(list(expectOk(await d.cli(['Get-InfrastructureBackup', '-Skip', '3'])).json)).toEqual([]);

    // A fresh machine sees the same list through -Path.
    const fresh = list(expectOk(await runCli(await freshHome(d), ['Get-InfrastructureBackup', '-Path', d.share])).json);
    expect(fresh.map((b) => b.Name)).toEqual([third.Name, second.Name, first.Name]);

    const one = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', first.Name.toUpperCase()])).json;
    expect(one.Name).toBe(first.Name);
    expect(one.Status).toBe('Succeeded');
  });

  it('a backup name that does not exist is BackupNotFound with exit 10', async () => {
    const missing = '01234567-89ab-4cde-8f01-23456789abcd';
    const got = await d.cli(['Get-InfrastructureBackup', '-Name', missing]);
    expect(got.code).toBe(10);
    expect(got.errors[0]?.ErrorId).toBe('BackupNotFound');
    expect(got.json).toBeUndefined();

    const filesNow = fingerprint(d.files);
    const { args, stdin } = d.decryptArgs();
    const restore = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', missing, '-Path', d.share, ...args], { stdin });
    expect(restore.code).toBe(10);
    expect(restore.errors[0]?.ErrorId).toBe('BackupNotFound');
    expect(fingerprint(d.files)).toBe(filesNow);

    const test = await d.cli(['Test-InfrastructureBackup', '-Name', missing]);
    expect(test.code).toBe(10);
    expect(test.errors[0]?.ErrorId).toBe('BackupNotFound');
  });
});
