import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProvider } from '../../src/providers/index.js';
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

const aclTools = (() => {
  try {
    execFileSync('setfacl', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

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
    const acl = async () => (await execa('getfacl', ['-p', '-c', file])).stdout;
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
