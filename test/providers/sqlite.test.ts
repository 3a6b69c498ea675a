import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProvider } from '../../src/providers/index.js';
import { aclOf, aclTools } from '../support/acl.js';
import type { Provider } from '../../src/providers/provider.js';
import {
  ACCOUNTS,
  Database,
  START_BALANCE,
  WRITER_SCRIPT,
  buildDatabase,
  checkInvariants,
  exportAll,
  snapshotDatabase,
  sqliteModulePath,
} from '../support/provider-fixtures.js';

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-sqlite-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const role = (file: string) => ({ name: 'ResourceManager', provider: 'sqlite' as const, restoreOrder: 1, path: file });

describe.each(['wal', 'delete'] as const)('sqlite provider copies a live database consistently (%s journal)', (mode) => {
  it('while another process writes in a loop', async () => {
    const file = path.join(tmp, 'live.db');
    buildDatabase(file, mode, 4);
    const script = path.join(tmp, 'writer.cjs');
    await fs.writeFile(script, WRITER_SCRIPT);
    const writer = execa(process.execPath, [script, sqliteModulePath, file], { reject: false, buffer: false });
    try {
      await new Promise<void>((resolve, reject) => {
        writer.stdout!.once('data', () => resolve());
        void writer.then((r) => reject(new Error(`writer exited early: ${String(r.stderr)}`)));
      });
      const provider: Provider = await createProvider(role(file));
      const seen: number[] = [];
      for (let i = 0; i < 3; i++) {
        const bytes = await exportAll(provider);
        const copy = path.join(tmp, `copy-${i}.db`);
        await fs.writeFile(copy, bytes);
        const inv = checkInvariants(copy);
        expect(inv.integrity).toBe('ok');
        expect(inv.total).toBe(ACCOUNTS * START_BALANCE);
        expect(inv.ledger).toBe(inv.transfers);
        seen.push(inv.transfers);
      }
      // The writer really was writing between (and during) the copies.
      expect(new Set(seen).size).toBeGreaterThan(1);
    } finally {
      writer.kill('SIGKILL');
      await writer;
    }
  });
});

// A writer killed in the middle of a transaction large enough to spill into the file leaves a hot
// -journal, which SQLite rolls back at the next open that may write. The copy's connection is
// read-only, so it failed with "attempt to write a readonly database": a service that crashed
// could not be backed up (on the day that matters most) until it ran again.
it('a database whose writer was killed mid-transaction (hot journal) is copied as last committed', async () => {
  const file = path.join(tmp, 'crashed.db');
  const db = new Database(file);
  db.pragma('journal_mode = delete');
  db.exec(
    'CREATE TABLE t (id INTEGER PRIMARY KEY, x BLOB); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200) INSERT INTO t SELECT i, randomblob(3000) FROM c;',
  );
  const rows = (d: InstanceType<typeof Database>) => d.prepare('SELECT id, hex(x) AS x FROM t ORDER BY id').all();
  const before = rows(db);
  db.close();
  const script = path.join(tmp, 'dies.cjs');
  await fs.writeFile(
    script,
    "const D = require(process.argv[2]); const db = new D(process.argv[3]); db.pragma('cache_size = 1'); db.exec('BEGIN'); db.exec('UPDATE t SET x = zeroblob(3000)'); console.log('mid'); setInterval(() => {}, 1000);",
  );
  const writer = execa(process.execPath, [script, sqliteModulePath, file], { reject: false, buffer: false });
  await new Promise<void>((resolve) => writer.stdout!.once('data', () => resolve()));
  writer.kill('SIGKILL');
  await writer;
  await fs.access(`${file}-journal`);

  const copy = path.join(tmp, 'copy.db');
  await fs.writeFile(copy, await exportAll(await createProvider(role(file))));
  const restored = new Database(copy, { readonly: true });
  try {
    expect(restored.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(rows(restored)).toEqual(before);
  } finally {
    restored.close();
  }
  // The database itself holds what was committed, as any writer opening it would find.
  const live = new Database(file);
  expect(rows(live)).toEqual(before);
  live.close();
});

// The restore refuses a database that fails SQLite's integrity check (SqliteImportCorrupt), but the
// backup copied a damaged one without looking and reported it Succeeded: every backup taken since
// the damage was one the restore would refuse, and nobody knew until the day it was needed.
it('a database that fails the integrity check the restore applies fails its backup, as damaged', async () => {
  const file = path.join(tmp, 'damaged.db');
  const db = new Database(file);
  db.pragma('journal_mode = delete');
  db.exec(
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 50) INSERT INTO t SELECT i, printf('value-%05d', i) FROM c;",
  );
  const { rootpage } = db.prepare("SELECT rootpage FROM sqlite_schema WHERE name = 't_v'").get() as { rootpage: number };
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.close();
  // One key of the index changed in place: the table reads as before, the index no longer matches it.
  const bytes = await fs.readFile(file);
  const page = bytes.subarray((rootpage - 1) * pageSize, rootpage * pageSize);
  const at = page.indexOf('value-00042');
  expect(at).toBeGreaterThan(0);
  page.write('value-99942', at);
  await fs.writeFile(file, bytes);

  const provider = await createProvider(role(file));
  // What the restore makes of these very bytes:
  const elsewhere = path.join(tmp, 'elsewhere.db');
  await expect(provider.import(Readable.from([await fs.readFile(file)]), { destination: elsewhere })).rejects.toMatchObject({
    errorId: 'SqliteImportCorrupt',
  });
  await expect(exportAll(provider)).rejects.toMatchObject({ errorId: 'SqliteDatabaseCorrupt', category: 'InvalidData' });
});

// Applications give SQLite collations and functions of their own at run time (Android's LOCALIZED,
// Python's create_collation, a normalising function in an expression index or generated column),
// and a schema may name them. The integrity check cannot run without them ("no such collation
// sequence", "unknown function"), and that was taken for damage: the restore refused every backup
// of such a database as "not a readable SQLite database", and the backup refused to take one.
describe('a database that needs its application to be checked', () => {
  const withCollation = (file: string) => {
    const db = new Database(file);
    db.exec("CREATE TABLE t (name TEXT); CREATE INDEX t_name ON t(name COLLATE NOCASE); INSERT INTO t VALUES ('b'), ('A');");
    // better-sqlite3 cannot define a collation: the index is made with a built-in one, then named as the application names it.
    db.unsafeMode(true);
    db.pragma('writable_schema = ON');
    db.exec("UPDATE sqlite_schema SET sql = replace(sql, 'NOCASE', 'unicase') WHERE name = 't_name'");
    db.close();
  };
  const withFunction = (file: string) => {
    const db = new Database(file);
    db.function('norm', { deterministic: true }, (x: unknown) => String(x).toLowerCase());
    db.exec("CREATE TABLE t (name TEXT); CREATE INDEX t_norm ON t(norm(name)); INSERT INTO t VALUES ('b'), ('A');");
    db.close();
  };
  it.each([
    ['a collation', withCollation],
    ['a function', withFunction],
  ])('of its own (%s) is backed up and restored', async (_what, build) => {
    const file = path.join(tmp, 'app.db');
    build(file);
    const expected = snapshotDatabase(file);
    const provider = await createProvider(role(file));
    const backup = await exportAll(provider);
    const dest = path.join(tmp, 'restored', 'app.db');
    await provider.import(Readable.from([backup]), { destination: dest });
    expect(snapshotDatabase(dest)).toEqual(expected);
  });
});

describe('sqlite provider import', () => {
  it('refuses data that is not a healthy database and keeps the old one', async () => {
    const file = path.join(tmp, 'rm.db');
    buildDatabase(file, 'wal', 1);
    const before = snapshotDatabase(file);
    const provider = await createProvider(role(file));
    for (const bad of [randomBytes(64 * 1024), Buffer.concat([Buffer.from('SQLite format 3\0'), randomBytes(8192)])]) {
      await expect(provider.import(Readable.from([bad]))).rejects.toMatchObject({ errorId: 'SqliteImportCorrupt', exitCode: 12 });
      expect(snapshotDatabase(file)).toEqual(before);
      expect((await fs.readdir(tmp)).filter((n) => n.includes('azs-'))).toEqual([]);
    }
  });

  it('a stale -wal of the replaced database is not replayed into the restored one', async () => {
    const file = path.join(tmp, 'rm.db');
    buildDatabase(file, 'wal', 1);
    const provider = await createProvider(role(file));
    const backup = await exportAll(provider);
    const expected = snapshotDatabase(file);

    // Leave a hot WAL behind, as a crashed service would: copy db and -wal while a writer holds them.
    const crashed = path.join(tmp, 'crashed.db');
    const db = new Database(file);
    db.pragma('wal_autocheckpoint = 0');
    db.prepare("UPDATE accounts SET name = 'from the stale wal'").run();
    await fs.copyFile(file, crashed);
    await fs.copyFile(`${file}-wal`, `${crashed}-wal`);
    db.close();

    await provider.import(Readable.from([backup]), { destination: crashed });
    await expect(fs.access(`${crashed}-wal`)).rejects.toThrow();
    expect(snapshotDatabase(crashed)).toEqual(expected);
  });

  it('keeps the mode of the database it replaces', async () => {
    const file = path.join(tmp, 'rm.db');
    buildDatabase(file, 'delete', 1);
    await fs.chmod(file, 0o640);
    const provider = await createProvider(role(file));
    await provider.import(Readable.from([await exportAll(provider)]));
    expect((await fs.stat(file)).mode & 0o777).toBe(0o640);
  });

  it.skipIf(!aclTools)('keeps the ACL of the database it replaces (the service account it lets in can still open it)', async () => {
    const file = path.join(tmp, 'rm.db');
    buildDatabase(file, 'delete', 1);
    await fs.chmod(file, 0o640);
    await execa('setfacl', ['-m', 'u:nobody:rw', file]);
    const acl = async () => aclOf(file);
    const before = await acl();
    const mode = (await fs.stat(file)).mode;
    expect(before).toContain('user:nobody:rw-');
    const provider = await createProvider(role(file));
    await provider.import(Readable.from([await exportAll(provider)]));
    expect(await acl()).toBe(before);
    expect((await fs.stat(file)).mode).toBe(mode);
  });

  it('restores through a registered path that is a symbolic link, and keeps the link', async () => {
    const real = path.join(tmp, 'data', 'rm.db');
    await fs.mkdir(path.dirname(real));
    buildDatabase(real, 'delete', 1);
    const link = path.join(tmp, 'rm-link.db');
    await fs.symlink(real, link);
    const provider = await createProvider(role(link));
    const backup = await exportAll(provider);
    const expected = snapshotDatabase(real);
    const db = new Database(real);
    db.exec('DELETE FROM accounts');
    db.close();
    await provider.import(Readable.from([backup]));
    expect((await fs.lstat(link)).isSymbolicLink()).toBe(true);
    expect(snapshotDatabase(real)).toEqual(expected);
  });

  it('keeps the mode and owner of the database for a machine that has none', async () => {
    const file = path.join(tmp, 'rm.db');
    buildDatabase(file, 'delete', 1);
    await fs.chmod(file, 0o640);
    const asRoot = process.getuid?.() === 0;
    if (asRoot) await fs.chown(file, 1234, 4321);
    const provider = await createProvider(role(file));
    let kept: Record<string, string> | undefined;
    const stream = await provider.export({
      keep: (a) => {
        kept = a;
      },
    });
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    expect(kept).toEqual({
      Mode: '0640',
      Uid: asRoot ? '1234' : String(process.getuid?.()),
      Gid: asRoot ? '4321' : String(process.getgid?.()),
    });

    const fresh = path.join(tmp, 'fresh', 'rm.db');
    await provider.import(Readable.from([Buffer.concat(chunks)]), { destination: fresh, kept });
    const st = await fs.stat(fresh);
    expect(st.mode & 0o7777).toBe(0o640);
    if (asRoot) expect([st.uid, st.gid]).toEqual([1234, 4321]);
    // Nonsense in a backup's record is ignored, not applied.
    const odd = path.join(tmp, 'odd', 'rm.db');
    await provider.import(Readable.from([Buffer.concat(chunks)]), { destination: odd, kept: { Mode: '9999', Uid: '-1', Gid: 'x' } });
    expect((await fs.stat(odd)).mode & 0o7777).toBe(0o600);
  });

  it("a failure while its copy is read is the provider's, typed: cancelled mid-stream, it says so", async () => {
    const file = path.join(tmp, 'rm.db');
    buildDatabase(file, 'delete', 8);
    const provider = await createProvider(role(file));
    const ac = new AbortController();
    const stream = await provider.export({ signal: ac.signal });
    const failed = new Promise((resolve) => stream.once('error', resolve));
    await new Promise((resolve) => stream.once('data', resolve));
    ac.abort();
    stream.resume();
    expect(await failed).toMatchObject({ errorId: 'SqliteExportCancelled', category: 'OperationStopped' });
  });

  it('restores into a folder that does not exist yet', async () => {
    const file = path.join(tmp, 'rm.db');
    buildDatabase(file, 'delete', 1);
    const provider = await createProvider(role(file));
    const dest = path.join(tmp, 'new', 'place', 'rm.db');
    await provider.import(Readable.from([await exportAll(provider)]), { destination: dest });
    expect(snapshotDatabase(dest)).toEqual(snapshotDatabase(file));
  });

  // On a redeployed machine the database's folder may be gone too. The restore made it owned by
  // root: the database came back with its owner, but its service, running as that owner, could not
  // create the -wal and -shm (or -journal) beside it, so its first write failed after a restore
  // that Succeeded.
  it.skipIf(process.getuid?.() !== 0)('a folder made for a database on a fresh machine lets its owner write the database', async () => {
    const file = path.join(tmp, 'rm.db');
    buildDatabase(file, 'wal', 1);
    const provider = await createProvider(role(file));
    const backup = await exportAll(provider);
    await fs.chmod(tmp, 0o755);
    const dest = path.join(tmp, 'new', 'identity', 'rm.db');
    await provider.import(Readable.from([backup]), { destination: dest, kept: { Mode: '0600', Uid: '1234', Gid: '4321' } });
    const script = path.join(tmp, 'service.cjs');
    await fs.writeFile(
      script,
      "const D = require(process.argv[2]); const db = new D(process.argv[3]); db.exec('UPDATE meta SET v = v + 1'); db.close();",
    );
    const service = ['--reuid=1234', '--regid=4321', '--clear-groups', process.execPath, script, sqliteModulePath, dest];
    const r = await execa('setpriv', service, { reject: false });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    // Only the folder holding the database is the service's; the ones above it stay root's.
    expect((await fs.stat(path.dirname(dest))).uid).toBe(1234);
    expect((await fs.stat(path.join(tmp, 'new'))).uid).toBe(0);
  });

  it('the export leaves no temporary copy behind', async () => {
    const file = path.join(tmp, 'rm.db');
    buildDatabase(file, 'wal', 1);
    const provider = await createProvider(role(file));
    // A private TMPDIR: other test files running at the same time use the shared one.
    const privateTmp = path.join(tmp, 'tmpdir');
    await fs.mkdir(privateTmp);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp;
    try {
      await exportAll(provider);
      // A consumer that gives up early: the copy still goes.
      const s = await provider.export();
      s.destroy();
      // The copy is removed when its stream closes, a moment after.
      for (let i = 0; i < 40 && (await fs.readdir(privateTmp)).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await fs.readdir(privateTmp)).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });
});
