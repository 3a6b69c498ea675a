import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { Provider, ProviderContext } from '../../src/providers/provider.js';

/** Helpers shared by the provider tests: data sets, pictures of data to compare, odd streams. */

export async function exportAll(p: Provider, ctx?: ProviderContext): Promise<Buffer> {
  const s = await p.export(ctx);
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

/** The first half of `bytes`, then the error a dropped share connection would give. */
export function halfThenFail(bytes: Buffer, message = 'connection to the share was reset'): Readable {
  return Readable.from(
    (async function* () {
      yield bytes.subarray(0, Math.floor(bytes.length / 2));
      await delay(20);
      throw new Error(message);
    })(),
  );
}

// ---------------------------------------------------------------- folders

export interface TreeEntry {
  rel: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  mtimeMs?: number;
  size?: number;
  sha256?: string;
  target?: string;
  /** For files with several links: the first path (in sorted order) sharing the inode. */
  linkGroup?: string;
}

/** Everything that must survive a round trip, keyed by relative path ('' is the root). */
export async function snapshotTree(root: string, opts: { symlinkTimes?: boolean } = {}): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const inodes = new Map<number, string>();
  const walk = async (rel: string): Promise<void> => {
    const abs = rel ? path.join(root, rel) : root;
    const st = await fs.lstat(abs);
    const base = { rel, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    if (st.isSymbolicLink()) {
      out.push({ ...base, type: 'symlink', target: await fs.readlink(abs), ...(opts.symlinkTimes ? { mtimeMs: st.mtimeMs } : {}) });
    } else if (st.isDirectory()) {
      out.push({ ...base, type: 'dir', mtimeMs: st.mtimeMs });
      for (const name of (await fs.readdir(abs)).sort()) await walk(rel ? `${rel}/${name}` : name);
    } else {
      const data = await fs.readFile(abs);
      const entry: TreeEntry = {
        ...base,
        type: 'file',
        mtimeMs: st.mtimeMs,
        size: st.size,
        sha256: createHash('sha256').update(data).digest('hex'),
      };
      if (st.nlink > 1) {
        if (!inodes.has(st.ino)) inodes.set(st.ino, rel);
        entry.linkGroup = inodes.get(st.ino);
      }
      out.push(entry);
    }
  };
  await walk('');
  return out;
}

/**
 * A configuration-like tree exercising what a folder backup must keep: modes (setgid, private,
 * executable), owners, whole-second mtimes, relative/absolute/dangling symlinks, a hard link,
 * empty and binary files, deep and long (pax) names, non-ASCII names.
 */
export async function buildTree(root: string): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  await fs.mkdir(path.join(root, 'conf'), { recursive: true });
  await fs.mkdir(path.join(root, 'bin'));
  await fs.mkdir(path.join(root, 'deep/a/b/c'), { recursive: true });
  await fs.mkdir(path.join(root, 'shared'));
  const long = 'x'.repeat(60);
  await fs.mkdir(path.join(root, long, long), { recursive: true });
  await fs.writeFile(path.join(root, 'conf/app.conf'), 'listen = 127.0.0.1\n');
  await fs.writeFile(path.join(root, 'bin/run.sh'), '#!/bin/sh\necho run\n');
  await fs.writeFile(path.join(root, 'secret.key'), randomBytes(64));
  await fs.writeFile(path.join(root, 'empty'), '');
  await fs.writeFile(path.join(root, 'big.bin'), randomBytes(3 * 1024 * 1024 + 17));
  await fs.writeFile(path.join(root, 'deep/a/b/c/file.txt'), 'deep\n');
  await fs.writeFile(path.join(root, long, long, 'long-name-file.txt'), 'long\n');
  await fs.writeFile(path.join(root, 'ñandú файл.txt'), 'unicode\n');
  await fs.link(path.join(root, 'secret.key'), path.join(root, 'secret.hardlink'));
  await fs.symlink('app.conf', path.join(root, 'conf/link-rel'));
  await fs.symlink('/etc/hostname', path.join(root, 'abs-link'));
  await fs.symlink('missing/target', path.join(root, 'dangling'));
  await fs.symlink('../conf', path.join(root, 'shared/up-link'));
  await fs.chmod(path.join(root, 'conf'), 0o750);
  await fs.chmod(path.join(root, 'conf/app.conf'), 0o640);
  await fs.chmod(path.join(root, 'bin/run.sh'), 0o755);
  await fs.chmod(path.join(root, 'secret.key'), 0o600);
  await fs.chmod(path.join(root, 'shared'), 0o2775);
  await fs.chmod(path.join(root, 'deep/a/b'), 0o711);
  if (asRoot) {
    await fs.chown(path.join(root, 'conf/app.conf'), 1234, 4321);
    await fs.lchown(path.join(root, 'conf/link-rel'), 1234, 4321);
    await fs.chown(path.join(root, 'shared'), 2000, 2000);
    await fs.chmod(path.join(root, 'shared'), 0o2775); // chown clears setgid
  }
  // Whole seconds: tar headers carry seconds, so that is what a round trip can promise.
  let t = Date.UTC(2023, 0, 2, 3, 4, 5) / 1000;
  const all = await snapshotTree(root);
  for (const e of [...all].reverse()) {
    t -= 3600;
    const abs = e.rel ? path.join(root, e.rel) : root;
    if (e.type === 'symlink') await fs.lutimes(abs, t, t);
    else await fs.utimes(abs, t, t);
  }
}

// ---------------------------------------------------------------- SQLite

interface Db {
  exec(sql: string): void;
  prepare(sql: string): { all(...a: unknown[]): unknown[]; run(...a: unknown[]): unknown; get(...a: unknown[]): unknown };
  pragma(sql: string, o?: { simple?: boolean }): unknown;
  transaction<T extends (...a: never[]) => unknown>(fn: T): T;
  function(name: string, o: { deterministic?: boolean }, fn: (...a: unknown[]) => unknown): void;
  unsafeMode(on: boolean): void;
  close(): void;
}
type DbCtor = new (file: string, o?: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => Db;
export const sqliteModulePath = createRequire(import.meta.url).resolve('better-sqlite3');
export const Database = createRequire(import.meta.url)('better-sqlite3') as DbCtor;

export const ACCOUNTS = 20;
export const START_BALANCE = 1000;

/** Accounts whose balances always sum to ACCOUNTS*START_BALANCE, a ledger, padding, a blob table. */
export function buildDatabase(file: string, journalMode: 'wal' | 'delete' = 'wal', padMb = 4): void {
  const db = new Database(file);
  db.pragma(`journal_mode = ${journalMode}`);
  db.exec(`
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, balance INTEGER NOT NULL);
    CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, pad BLOB);
    CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
    CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB, note TEXT);
    CREATE INDEX ledger_amount ON ledger(amount);
    INSERT INTO meta VALUES ('transfers', 0);
  `);
  const acc = db.prepare('INSERT INTO accounts (id, name, balance) VALUES (?, ?, ?)');
  const blob = db.prepare('INSERT INTO blobs (id, data, note) VALUES (?, ?, ?)');
  const pad = db.prepare('INSERT INTO blobs (data, note) VALUES (randomblob(65536), ?)');
  db.transaction(() => {
    for (let i = 1; i <= ACCOUNTS; i++) acc.run(i, `account ${i} ñ`, START_BALANCE);
    blob.run(1, randomBytes(1000), 'binary');
    blob.run(2, null, null);
    for (let i = 0; i < padMb * 16; i++) pad.run('padding');
  })();
  db.close();
}

/** Schema and every row of every table, BLOBs as hex. */
export function snapshotDatabase(file: string): unknown {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const schema = db.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY type, name').all() as { type: string; name: string }[];
    const rows: Record<string, unknown[]> = {};
    for (const t of schema.filter((s) => s.type === 'table')) {
      rows[t.name] = (db.prepare(`SELECT * FROM "${t.name}" ORDER BY rowid`).all() as Record<string, unknown>[]).map((r) =>
        Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('hex') : v])),
      );
    }
    return { schema, rows };
  } finally {
    db.close();
  }
}

/** The invariants the writer keeps in every transaction; a torn copy breaks them. */
export function checkInvariants(file: string): { integrity: unknown; total: number; ledger: number; transfers: number } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return {
      integrity: db.pragma('integrity_check', { simple: true }),
      total: (db.prepare('SELECT sum(balance) AS s FROM accounts').get() as { s: number }).s,
      ledger: (db.prepare('SELECT count(*) AS c FROM ledger').get() as { c: number }).c,
      transfers: (db.prepare("SELECT v FROM meta WHERE k = 'transfers'").get() as { v: number }).v,
    };
  } finally {
    db.close();
  }
}

/** Source of a child process that moves money between accounts in a loop until killed. */
export const WRITER_SCRIPT = `
const Database = require(process.argv[2]);
const db = new Database(process.argv[3], { timeout: 60000 });
const move = db.prepare('UPDATE accounts SET balance = balance + ? WHERE id = ?');
const log = db.prepare('INSERT INTO ledger (amount, pad) VALUES (?, randomblob(4000))');
const count = db.prepare("UPDATE meta SET v = v + 1 WHERE k = 'transfers'");
const tx = db.transaction((a, b, amount) => { move.run(-amount, a); log.run(amount); move.run(amount, b); count.run(); });
let n = 0;
for (;;) {
  tx(1 + Math.floor(Math.random() * ${ACCOUNTS}), 1 + Math.floor(Math.random() * ${ACCOUNTS}), 1 + Math.floor(Math.random() * 50));
  if (++n === 1) process.stdout.write('ready\\n');
}
`;

// ---------------------------------------------------------------- crafted tar archives

export interface CraftedEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  body?: string | Buffer;
  link?: string;
  /** A raw typeflag instead of the one `type` gives ('x' for a pax header, 'g', 'L', ...). */
  flag?: string;
  /** The size field, when it should say something other than the body's length. */
  size?: number;
}

/** The body of a pax extended header ('x') holding `records`. */
export function paxBody(records: Record<string, string>): string {
  return Object.entries(records)
    .map(([k, v]) => {
      const rest = ` ${k}=${v}\n`;
      let len = Buffer.byteLength(rest) + 1;
      while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
      return `${len}${rest}`;
    })
    .join('');
}

function field(h: Buffer, value: string, offset: number, length: number): void {
  h.write(value, offset, length, 'utf8');
}
function octal(h: Buffer, n: number, offset: number, length: number): void {
  field(h, `${n.toString(8).padStart(length - 1, '0')}\0`, offset, length);
}

/** A ustar archive written header by header, so it can say things our own tar never would. */
export function craftTar(entries: CraftedEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const h = Buffer.alloc(512);
    field(h, e.name, 0, 100);
    octal(h, e.type === 'dir' ? 0o755 : 0o644, 100, 8);
    octal(h, 0, 108, 8);
    octal(h, 0, 116, 8);
    const carriesBody = e.type === 'file' || e.flag !== undefined;
    octal(h, e.size ?? (carriesBody ? body.length : 0), 124, 12);
    octal(h, 1_700_000_000, 136, 12);
    h.fill(' ', 148, 156);
    h.write(e.flag ?? { file: '0', hardlink: '1', symlink: '2', dir: '5' }[e.type], 156, 1);
    if (e.link) field(h, e.link, 157, 100);
    field(h, 'ustar\0', 257, 6);
    field(h, '00', 263, 2);
    let sum = 0;
    for (const b of h) sum += b;
    field(h, `${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    blocks.push(h);
    if (carriesBody && body.length) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}
