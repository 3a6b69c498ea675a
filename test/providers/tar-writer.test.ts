import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createProvider } from '../../src/providers/index.js';
import { encodeHeader, endOfArchive, HEADER_FORMAT, paddingOf } from '../../src/providers/tar-header.js';
import { type TarEntry, TarScanner } from '../../src/providers/tar-scanner.js';
import { directoryTar, SourceChangedError, tarEntries, type TarWriterEntry } from '../../src/providers/tar-writer.js';
import { describeWithAndWithoutAddons, setNativeAddons } from '../support/native-switch.js';
import { buildTree, exportAll, snapshotTree } from '../support/provider-fixtures.js';

let tmp: string;
let root: string;

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-tarw-'));
  root = path.join(tmp, 'root');
  await fs.mkdir(root);
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function drain(s: Readable | Buffer): Promise<Buffer> {
  if (Buffer.isBuffer(s)) return Buffer.from(s);
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

/** An entry's data, whole; rejects with what reading it met (a small file's data() throws it at the call). */
async function dataOf(entry: { data?: () => Readable | Buffer }): Promise<Buffer> {
  return drain(entry.data!());
}

function scan(bytes: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  const scanner = new TarScanner((e) => entries.push(e));
  // In odd pieces, as a stream would bring them.
  for (let at = 0; at < bytes.length; at += 7919) scanner.write(bytes.subarray(at, at + 7919));
  scanner.end();
  return entries;
}

function extract(bytes: Buffer, dest: string): void {
  execFileSync('tar', ['-x', '-p', '--numeric-owner', '-f', '-', '-C', dest], { input: bytes, maxBuffer: 1 << 30 });
}

const touchNs = (p: string, when: string) => execFileSync('touch', ['-h', '-d', when, p]);

/** buildTree's tree, plus what it lacks: sub-second and pre-1970 times, a long link target. */
async function buildFullTree(): Promise<void> {
  await buildTree(root);
  await fs.writeFile(path.join(root, 'conf/precise.conf'), 'ns\n');
  await fs.symlink(`${'t'.repeat(150)}/target`, path.join(root, 'long-target'));
  await fs.mkdir(path.join(root, 'old'));
  await fs.writeFile(path.join(root, 'old/1960.txt'), 'old\n');
  touchNs(path.join(root, 'conf/precise.conf'), '2024-02-29 12:34:56.123456789');
  touchNs(path.join(root, 'long-target'), '2024-03-01 00:00:00.5');
  touchNs(path.join(root, 'old/1960.txt'), '1960-01-01 00:00:00.25');
  touchNs(path.join(root, 'old'), '2001-01-01 00:00:00.000000001');
  touchNs(path.join(root, 'conf'), '2022-01-01 00:00:00.999999999');
  touchNs(root, '2021-06-01 00:00:00.75');
}

describeWithAndWithoutAddons('tar-writer', () => {
  it('writes a tree GNU tar extracts as it was: modes, owners, ns mtimes, links, long and odd names, empty and big files', async () => {
    await buildFullTree();
    const bytes = await drain(directoryTar(root));
    const dest = path.join(tmp, 'dest');
    await fs.mkdir(dest);
    extract(bytes, dest);
    expect(await snapshotTree(dest, { symlinkTimes: true })).toEqual(await snapshotTree(root, { symlinkTimes: true }));
    // To the nanosecond, not only to the millisecond snapshotTree compares.
    for (const rel of ['conf/precise.conf', 'long-target', 'old/1960.txt', 'old', 'conf', '']) {
      const [a, b] = await Promise.all([path.join(root, rel), path.join(dest, rel)].map((p) => fs.lstat(p, { bigint: true })));
      expect(b!.mtimeNs, rel).toBe(a!.mtimeNs);
    }
    expect((await fs.stat(path.join(dest, 'secret.hardlink'))).ino).toBe((await fs.stat(path.join(dest, 'secret.key'))).ino);
    expect(await fs.readlink(path.join(dest, 'long-target'))).toBe(`${'t'.repeat(150)}/target`);
  });

  it('keeps a name that is not UTF-8 byte for byte, short or long', async () => {
    const short = Buffer.from('latin1-\xe9.txt', 'latin1');
    const long = Buffer.concat([Buffer.from('l'.repeat(120)), Buffer.from([0xff, 0xfe])]);
    for (const name of [short, long]) await fs.writeFile(Buffer.concat([Buffer.from(`${root}/`), name]), name);
    const dest = path.join(tmp, 'dest');
    await fs.mkdir(dest);
    extract(await drain(directoryTar(root)), dest);
    const names = await fs.readdir(dest, { encoding: 'buffer' });
    expect(names.sort(Buffer.compare)).toEqual([long, short].sort(Buffer.compare));
    for (const name of names) expect((await fs.readFile(Buffer.concat([Buffer.from(`${dest}/`), name]))).equals(name)).toBe(true);
  });

  it('sorts names bytewise whatever their bytes: UTF-8, latin1, control characters, prefixes', async () => {
    const names = [
      Buffer.from('a\xe9', 'latin1'),
      Buffer.from('a\xff\xfe', 'latin1'),
      Buffer.from('aé', 'utf8'),
      Buffer.from('a'),
      Buffer.from('a~'),
      Buffer.from('aZ'),
      Buffer.from('a\x01'),
      Buffer.from('\x7fz', 'latin1'),
      Buffer.from('日本', 'utf8'),
    ];
    for (const name of names) await fs.writeFile(Buffer.concat([Buffer.from(`${root}/`), name]), name);
    const archived: Buffer[] = [];
    for await (const entry of tarEntries(root)) if (entry.kind === 'file') archived.push(entry.name.subarray(2));
    expect(archived).toEqual([...names].sort(Buffer.compare));
  });

  it('sorts names by their bytes: high bytes after ASCII, a prefix before what extends it, UTF-8 or not', async () => {
    const names = ['b', 'a\xff', 'a', 'a b', 'Z', '\xc3\xa9', '\xe9', 'a.', '~', '\x7f'].map((n) => Buffer.from(n, 'latin1'));
    for (const name of names) await fs.writeFile(Buffer.concat([Buffer.from(`${root}/`), name]), name);
    const archived: Buffer[] = [];
    for await (const e of tarEntries(root)) if (e.kind === 'file') archived.push(e.name.subarray(2));
    expect(archived).toEqual([...names].sort(Buffer.compare));
  });

  it('lists entries in a fixed order, root first as ./, a folder before its children, names sorted bytewise', async () => {
    await buildFullTree();
    const entries = scan(await drain(directoryTar(root)));
    expect(entries[0]).toMatchObject({ path: './', type: 'Directory' });
    const names = entries.map((e) => e.path);
    const dirOf = (p: string) => path.posix.dirname(p.replace(/\/$/, ''));
    for (const [i, p] of names.entries()) {
      if (i === 0) continue;
      // Its folder came before it.
      expect(names.slice(0, i)).toContain(dirOf(p) === '.' ? './' : `${dirOf(p)}/`);
    }
    const siblings = names.filter((p) => dirOf(p) === '.' && p !== './').map((p) => Buffer.from(p.replace(/\/$/, '')));
    expect(siblings).toEqual([...siblings].sort(Buffer.compare));
    // The first name in archive order holds the data; the other one links to it.
    expect(entries.find((e) => e.path === './secret.key')).toMatchObject({ type: 'Link', linkpath: './secret.hardlink', size: 0 });
    expect(entries.find((e) => e.path === './conf/')).toMatchObject({ type: 'Directory', mode: 0o750 });
    expect(entries.find((e) => e.path === './big.bin')).toMatchObject({ type: 'File', size: 3 * 1024 * 1024 + 17 });
    expect(entries.find((e) => e.path === './empty')).toMatchObject({ type: 'File', size: 0 });
    expect(entries.find((e) => e.path === './conf/precise.conf')!.mtime.getTime()).toBe(Date.UTC(2024, 1, 29, 12, 34, 56, 123));
    expect(entries.find((e) => e.path === './old/1960.txt')!.mtime.getTime()).toBe(Date.UTC(1960, 0, 1, 0, 0, 0, 250));
    expect(names.filter((p) => Buffer.byteLength(p) > 100).length).toBeGreaterThan(0);
  });

  it('gives the same bytes for the same tree, and GNU tar lists the same entries as its own archive of it', async () => {
    await buildFullTree();
    const first = await drain(directoryTar(root));
    const second = await drain(directoryTar(root));
    expect(second.equals(first)).toBe(true);
    const list = (archive: string) =>
      execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', archive], { encoding: 'latin1' }).split('\n').sort();
    await fs.writeFile(path.join(tmp, 'ours.tar'), first);
    execFileSync('tar', [
      '--format=posix',
      '--pax-option=delete=atime,delete=ctime',
      '--numeric-owner',
      '--sort=name',
      '-C',
      root,
      '-cf',
      path.join(tmp, 'gnu.tar'),
      '.',
    ]);
    expect(list(path.join(tmp, 'ours.tar'))).toEqual(list(path.join(tmp, 'gnu.tar')));
  });

  it('is the concatenation of its entries: headers, data and padding, then two zero blocks', async () => {
    await buildFullTree();
    const parts: Buffer[] = [];
    let entries = 0;
    for await (const e of tarEntries(root)) {
      entries++;
      parts.push(e.header);
      if (e.data) {
        const data = await dataOf(e);
        expect(data.length).toBe(e.stat.size + e.padding);
        expect(e.padding).toBe(paddingOf(e.stat.size));
        parts.push(data);
      }
    }
    expect(entries).toBeGreaterThan(20);
    parts.push(endOfArchive());
    expect(Buffer.concat(parts).equals(await drain(directoryTar(root)))).toBe(true);
  });

  it('makes a header from the stat the files cache compares, never from atime or ctime', async () => {
    await fs.writeFile(path.join(root, 'a'), 'same');
    const headerOf = async () => {
      for await (const e of tarEntries(root)) if (e.path === 'a') return e.header;
      throw new Error('no entry a');
    };
    const before = await headerOf();
    await fs.chmod(path.join(root, 'a'), 0o644); // ctime moves
    execFileSync('touch', ['-a', '-d', '2000-01-01', path.join(root, 'a')]); // atime moves
    expect((await headerOf()).equals(before)).toBe(true);
  });

  it('archives FIFOs and leaves sockets out, as GNU tar does', async () => {
    execFileSync('mkfifo', [path.join(root, 'control.fifo')]);
    const server = net.createServer().listen(path.join(root, 'agent.sock'));
    await new Promise((r) => server.once('listening', r));
    try {
      const entries = scan(await drain(directoryTar(root)));
      expect(entries.map((e) => [e.path, e.type])).toEqual([
        ['./', 'Directory'],
        ['./control.fifo', 'FIFO'],
      ]);
    } finally {
      server.close();
    }
  });

  it('archives a device with its numbers', async () => {
    if (process.getuid?.() !== 0) return;
    execFileSync('mknod', [path.join(root, 'null'), 'c', '1', '3']);
    const bytes = await drain(directoryTar(root));
    expect(scan(bytes).map((e) => [e.path, e.type])).toContainEqual(['./null', 'CharacterDevice']);
    expect(execFileSync('tar', ['-tvf', '-'], { input: bytes, encoding: 'utf8' })).toMatch(/^crw.* 1,3 .*\.\/null$/m);
  });

  it('does not follow a symbolic link, to a file or to a folder', async () => {
    const elsewhere = path.join(tmp, 'elsewhere');
    await fs.mkdir(elsewhere);
    await fs.writeFile(path.join(elsewhere, 'secret'), 'outside');
    await fs.symlink(elsewhere, path.join(root, 'dir-link'));
    await fs.symlink(path.join(elsewhere, 'secret'), path.join(root, 'file-link'));
    const bytes = await drain(directoryTar(root));
    expect(scan(bytes).map((e) => [e.path, e.type])).toEqual([
      ['./', 'Directory'],
      ['./dir-link', 'SymbolicLink'],
      ['./file-link', 'SymbolicLink'],
    ]);
    expect(bytes.includes('outside')).toBe(false);
  });

  it('takes every stat as lstat gives it, to the nanosecond, times past 2262 included', async () => {
    await buildFullTree();
    // Past what 64 bits of nanoseconds hold: the addon leaves it to lstat.
    await fs.writeFile(path.join(root, 'far-future'), 'later\n');
    touchNs(path.join(root, 'far-future'), '2300-01-01 00:00:00.123456789');
    const entries: TarWriterEntry[] = [];
    for await (const e of tarEntries(root)) entries.push(e);
    expect(entries.map((e) => e.path)).toContain('far-future');
    for (const e of entries) {
      const st = await fs.lstat(path.join(root, e.path), { bigint: true });
      const { size, mode, uid, gid, nlink, mtimeNs, ctimeNs, ino, dev } = e.stat;
      expect({ size, mode, uid, gid, nlink, mtimeNs, ctimeNs, ino, dev }, e.path).toEqual({
        size: Number(st.size),
        mode: Number(st.mode),
        uid: Number(st.uid),
        gid: Number(st.gid),
        nlink: Number(st.nlink),
        mtimeNs: st.mtimeNs,
        ctimeNs: st.ctimeNs,
        ino: st.ino,
        dev: st.dev,
      });
    }
  });

  it('gives the same entries with the addon as without it', async () => {
    await buildFullTree();
    const walk = async (native: boolean) => {
      const restore = setNativeAddons(native);
      try {
        const entries: unknown[] = [];
        for await (const e of tarEntries(root)) {
          const { data: _data, ...rest } = e;
          entries.push({ ...rest, header: e.header });
        }
        return entries;
      } finally {
        restore();
      }
    };
    expect(await walk(true)).toEqual(await walk(false));
  });

  it('encodes the golden headers of HEADER_FORMAT 1 (the files cache compares the fields, not the bytes)', () => {
    const cases: Parameters<typeof encodeHeader>[0][] = [
      { name: Buffer.from('./'), type: '5', mode: 0o40755, uid: 0, gid: 0, size: 0, mtimeNs: 1_700_000_000_000_000_000n },
      {
        name: Buffer.from('./conf/app.conf'),
        type: '0',
        mode: 0o100640,
        uid: 1000,
        gid: 1000,
        size: 1234,
        mtimeNs: 1_765_000_000_123_456_789n,
      },
      {
        name: Buffer.from(`./${'n'.repeat(120)}`),
        type: '0',
        mode: 0o104755,
        uid: 3_000_000,
        gid: 4_000_000,
        size: 2 ** 33 + 5,
        mtimeNs: -2_500_000_000n,
      },
      {
        name: Buffer.from('./link'),
        type: '2',
        mode: 0o120777,
        uid: 0,
        gid: 0,
        size: 0,
        mtimeNs: 1_600_000_000_500_000_000n,
        linkname: Buffer.from(`${'t'.repeat(150)}/target`),
      },
      {
        name: Buffer.from('./hard'),
        type: '1',
        mode: 0o100600,
        uid: 7,
        gid: 8,
        size: 0,
        mtimeNs: 9_000_000_000_000_000_000n,
        linkname: Buffer.from('./conf/app.conf'),
      },
      { name: Buffer.from('./null'), type: '3', mode: 0o20666, uid: 0, gid: 0, size: 0, mtimeNs: 1_000_000_000n, devmajor: 1, devminor: 3 },
      { name: Buffer.from('./fifo'), type: '6', mode: 0o10644, uid: 0, gid: 0, size: 0, mtimeNs: 0n },
    ];
    const digest = createHash('sha256');
    for (const c of cases) digest.update(encodeHeader(c));
    // If this fails, what encodeHeader() writes changed: give HEADER_FORMAT (tar-header.ts) a new
    // number and this test its new digest, or files cached before would keep their old headers.
    expect(HEADER_FORMAT).toBe(1);
    expect(digest.digest('hex')).toBe('9c508813d3bbe0d0d0d7e5c9b2d63b646deafa08017452b746629f16e3c310f6');
  });

  it('encodes what ustar fields cannot hold in pax records: sizes from 8 GiB, big owners, long names', async () => {
    const size = 2 ** 33 + 5;
    const header = encodeHeader({
      name: Buffer.from(`./${'n'.repeat(120)}`),
      type: '0',
      mode: 0o100640,
      uid: 3_000_000,
      gid: 4_000_000,
      size,
      mtimeNs: 1_700_000_000_000_000_001n,
    });
    // The scanner judges the header; the data it would then skip is not needed for that.
    let entry: TarEntry | undefined;
    new TarScanner((e) => {
      entry = e;
    }).write(header);
    expect(entry).toMatchObject({ path: `./${'n'.repeat(120)}`, size, uid: 3_000_000, gid: 4_000_000, mode: 0o640 });
    // GNU tar reads it too: an archive whose data is a hole, listed without being read.
    const archive = path.join(tmp, 'huge.tar');
    const fh = await fs.open(archive, 'w');
    await fh.write(header, 0, header.length, 0);
    await fh.truncate(header.length + size + paddingOf(size) + 1024);
    await fh.close();
    const listed = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', archive], { encoding: 'utf8' });
    expect(listed).toContain(`-rw-r----- 3000000/4000000 ${size} 2023-11-14 22:13:20.000000001 ./${'n'.repeat(120)}`);
  });
});

describeWithAndWithoutAddons('tar-writer, files that change while they are read', () => {
  async function entryOf(name: string): Promise<{ entry: TarWriterEntry; done: () => Promise<void> }> {
    const it = tarEntries(root)[Symbol.asyncIterator]();
    for (;;) {
      const next = await it.next();
      if (next.done) throw new Error(`no entry ${name}`);
      if (next.value.path === name) return { entry: next.value, done: async () => void (await it.return(undefined)) };
    }
  }

  it('gives a small file whole (its data and padding, read at the call), a large one as a stream read ahead', async () => {
    await fs.writeFile(path.join(root, 'small'), 'abc');
    await fs.writeFile(path.join(root, 'large'), Buffer.alloc(300 * 1024, 7));
    let { entry, done } = await entryOf('small');
    const small = entry.data!();
    expect(Buffer.isBuffer(small)).toBe(true);
    expect((small as Buffer).equals(Buffer.concat([Buffer.from('abc'), Buffer.alloc(509)]))).toBe(true);
    await done();
    ({ entry, done } = await entryOf('large'));
    const large = entry.data!();
    expect(large).toBeInstanceOf(Readable);
    expect((await drain(large)).equals(Buffer.alloc(300 * 1024, 7))).toBe(true);
    await done();
  });

  it("throws a small file's failure at the call, before any of it is taken", async () => {
    await fs.writeFile(path.join(root, 'gone-small'), 'x');
    const { entry, done } = await entryOf('gone-small');
    await fs.rm(path.join(root, 'gone-small'));
    expect(() => entry.data!()).toThrow(expect.objectContaining({ path: 'gone-small', reason: 'file removed before we read it' }));
    await done();
  });

  it('fails a small file that grew between the walk and its read', async () => {
    await fs.writeFile(path.join(root, 'log'), 'line\n');
    const { entry, done } = await entryOf('log');
    await fs.appendFile(path.join(root, 'log'), 'more\n');
    await expect(dataOf(entry)).rejects.toMatchObject({
      name: 'SourceChangedError',
      path: 'log',
      reason: 'file changed as we read it',
    });
    await done();
  });

  it('fails a big file that grows while it is read, and one that shrinks', async () => {
    await fs.writeFile(path.join(root, 'big'), Buffer.alloc(8 << 20, 1));
    let { entry, done } = await entryOf('big');
    const s = entry.data!() as Readable;
    const grown = (async () => {
      for await (const _ of s) await fs.appendFile(path.join(root, 'big'), 'x');
    })();
    await expect(grown).rejects.toBeInstanceOf(SourceChangedError);
    await done();

    ({ entry, done } = await entryOf('big'));
    await fs.truncate(path.join(root, 'big'), 1 << 20);
    await expect(dataOf(entry)).rejects.toMatchObject({ name: 'SourceChangedError', path: 'big' });
    await done();
  });

  it('fails a file removed before it is read', async () => {
    await fs.writeFile(path.join(root, 'gone'), 'x');
    const { entry, done } = await entryOf('gone');
    await fs.rm(path.join(root, 'gone'));
    await expect(dataOf(entry)).rejects.toMatchObject({ path: 'gone', reason: 'file removed before we read it' });
    await done();
  });

  it('fails a folder that gained a name while it was walked', async () => {
    await fs.mkdir(path.join(root, 'spool'));
    await fs.writeFile(path.join(root, 'spool/a'), 'a');
    const it = tarEntries(root)[Symbol.asyncIterator]();
    let next = await it.next();
    while (!next.done && next.value.path !== 'spool/a') next = await it.next();
    await fs.writeFile(path.join(root, 'spool/b'), 'b');
    await expect(
      (async () => {
        while (!(await it.next()).done);
      })(),
    ).rejects.toMatchObject({ path: 'spool', reason: 'file changed as we read it' });
  });

  it('through the directory provider: a retryable DirectorySourceChanged that names the file', async () => {
    await fs.writeFile(path.join(root, 'live.log'), Buffer.alloc(32 << 20, 1));
    const provider = await createProvider({ name: 'Files', provider: 'directory', restoreOrder: 1, path: root });
    const s = await provider.export();
    let appended = false;
    const read = (async () => {
      for await (const _ of s) {
        if (!appended) await fs.appendFile(path.join(root, 'live.log'), 'appended\n');
        appended = true;
      }
    })();
    await expect(read).rejects.toMatchObject({
      errorId: 'DirectorySourceChanged',
      retryable: true,
      message: expect.stringMatching(/changed while they were read.*: \.\/live\.log: file changed as we read it\.$/),
    });
    // Left alone, the same folder exports.
    expect((await exportAll(provider)).length).toBeGreaterThan(32 << 20);
  });
});
