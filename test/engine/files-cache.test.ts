import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CachedMember, FilesCache, FilesCacheBuilder } from '../../src/engine/files-cache.js';
import { settled } from '../../src/engine/member-chunks.js';
import { tarEntries, tarStream } from '../../src/providers/tar-writer.js';
import { ChunkRefList, type ChunkRefs } from '../../src/repository/chunk-refs.js';
import { expectOk, makeDrill, spawnCli, whileRunning, type Drill } from '../support/cli.js';
import { readBackup } from '../support/repository-reader.js';

/**
 * The files cache of directory roles (issue 19 point 4), through the real CLI: a second backup of
 * an unchanged tree opens no file (the test-only AZSBACKUP_TEST_OPEN_LOG of tar-writer.ts logs
 * every regular file the process opens), and every backup's stream, read back by the independent
 * reader, is byte for byte tarStream(tarEntries(root)) of the tree as it was.
 */

const FILES = 60;

async function archiveOf(root: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const piece of tarStream(tarEntries(root))) parts.push(piece as Buffer);
  return Buffer.concat(parts);
}

describe('files cache', () => {
  let d: Drill;
  let tree: string;
  let openLog: string;

  /**
   * A backup of the tree; the files it opened, and its stderr (verbose). Without the kernel's
   * writeback window for files written through a mapping (files-cache-mmap.test.ts tests it),
   * so that these tests need wait only past the clock's.
   */
  async function backUp(): Promise<{ name: string; opened: string[]; stderr: string }> {
    await fs.rm(openLog, { force: true });
    const env = { AZSBACKUP_TEST_OPEN_LOG: openLog, AZSBACKUP_TEST_DIRTY_PAGES_MS: '0' };
    const r = expectOk(await d.cli(['Start-InfrastructureBackup', '-Verbose'], { env }), 'Start-InfrastructureBackup');
    expect(r.json.Status).toBe('Succeeded');
    const log = await fs.readFile(openLog, 'utf8').catch(() => '');
    return { name: r.json.Name, opened: log.split('\n').filter(Boolean).sort(), stderr: r.stderr };
  }

  /** The backup's stream as the independent reader restores it equals the archive of the tree now. */
  async function expectRestoresTree(name: string): Promise<void> {
    const read = await readBackup(d.share, name, { kind: 'Key', key: Buffer.from(d.key!, 'base64') });
    expect(read.roles.get('Tree')!.equals(await archiveOf(tree))).toBe(true);
  }

  async function cacheFile(): Promise<string> {
    const folder = path.join(d.home, 'files-cache');
    const [repository] = await fs.readdir(folder);
    return path.join(folder, repository!, 'Tree');
  }

  /** Files older than the racy window (member-chunks.ts), so the first backup remembers them. */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 3200));

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    tree = path.join(d.root, 'tree');
    openLog = path.join(d.root, 'opened.log');
    await fs.mkdir(path.join(tree, 'sub'), { recursive: true });
    // Whole-second mtimes, which utimes() can put back exactly.
    const old = new Date('2024-01-02T03:04:05Z');
    for (let i = 0; i < FILES; i++) {
      const file = path.join(tree, i % 2 ? 'sub' : '', `f${i}.txt`);
      await fs.writeFile(file, `file ${i}\n`.repeat(i + 1));
      await fs.utimes(file, old, old);
    }
    await fs.writeFile(path.join(tree, 'big.bin'), randomBytes(3 * 1024 * 1024));
    await fs.symlink('f0.txt', path.join(tree, 'link'));
    await d.register('Tree', ['-Provider', 'directory', '-Path', tree]);
    await settle();
  });
  afterAll(async () => d?.cleanup());

  it('a second backup of an unchanged tree opens no file and restores byte-identical', async () => {
    const first = await backUp();
    expect(first.opened.length).toBe(FILES + 1);
    await expectRestoresTree(first.name);
    const cache = await cacheFile();
    expect((await fs.stat(cache)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.dirname(cache))).mode & 0o777).toBe(0o700);
    const second = await backUp();
    expect(second.opened).toEqual([]);
    expect(second.stderr).toContain(`${FILES + 1} files unchanged since the last backup`);
    await expectRestoresTree(second.name);
  });

  it('a file changed with its mtime put back is read again (its ctime moved) and its new content stored', async () => {
    const file = path.join(tree, 'f4.txt');
    const st = await fs.stat(file, { bigint: true });
    const before = await fs.readFile(file);
    await fs.writeFile(file, Buffer.from(before.toString().toUpperCase()));
    await fs.utimes(file, st.atime, st.mtime);
    const now = await fs.stat(file, { bigint: true });
    expect([now.mtimeNs, now.size, now.ino]).toEqual([st.mtimeNs, st.size, st.ino]);
    expect(now.ctimeNs).not.toBe(st.ctimeNs);
    const b = await backUp();
    expect(b.opened).toEqual(['f4.txt']);
    await expectRestoresTree(b.name);
  });

  it('a cache naming chunks the repository no longer holds falls back to reading', async () => {
    await settle();
    await backUp(); // f4.txt remembered now
    // As a prune that removed every pack would leave it: the index names none of the cached chunks.
    const repo = path.join(d.share, 'AzsRepository');
    for (const sub of ['packs', 'index']) {
      for (const f of await fs.readdir(path.join(repo, sub), { recursive: true })) {
        const p = path.join(repo, sub, f);
        if ((await fs.stat(p)).isFile()) await fs.rm(p);
      }
    }
    const b = await backUp();
    expect(b.opened.length).toBe(FILES + 1);
    await expectRestoresTree(b.name);
  });

  it('a backup killed before its commit leaves the previous cache as it was', async () => {
    await settle();
    await backUp();
    const cache = await cacheFile();
    const was = await fs.readFile(cache);
    await fs.appendFile(path.join(tree, 'sub', 'f7.txt'), 'more\n');
    let stderr = '';
    const child = spawnCli(d.home, ['Start-InfrastructureBackup'], { env: { AZSBACKUP_TEST_HALT_AT: 'catalogs' } });
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    try {
      await whileRunning(child, 'the halt at catalogs', async () => stderr.includes('AZSBACKUP_TEST_HALTED catalogs'));
    } finally {
      child.kill('SIGKILL');
    }
    expect((await child).signal).toBe('SIGKILL');
    expect((await fs.readFile(cache)).equals(was)).toBe(true);
    const b = await backUp();
    expect(b.opened).toEqual(['sub/f7.txt']);
    await expectRestoresTree(b.name);
  });

  it('a file changed shortly before a backup is remembered by it where the local clock set its ctime', async () => {
    await settle();
    await backUp();
    await fs.appendFile(path.join(tree, 'f8.txt'), 'changed\n');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect((await backUp()).opened).toEqual(['f8.txt']);
    // ext4, XFS, Btrfs, tmpfs...: 100 ms is the window, so the next backup trusts what this one read;
    // elsewhere (an overlay or network file system) the 3 s window has it read once more.
    const local = [0xef53, 0x58465342, 0x9123683e, 0x01021994].includes((await fs.statfs(tree)).type);
    expect((await backUp()).opened).toEqual(local ? [] : ['f8.txt']);
  });

  it('a damaged or truncated cache is ignored with a note, never a failure', async () => {
    await settle();
    await backUp();
    const cache = await cacheFile();
    const whole = await fs.readFile(cache);
    await fs.writeFile(cache, whole.subarray(0, Math.floor(whole.length / 2)));
    const truncated = await backUp();
    expect(truncated.stderr).toContain('is damaged or truncated and was ignored');
    expect(truncated.opened.length).toBe(FILES + 1);
    await expectRestoresTree(truncated.name);
    const again = await fs.readFile(cache);
    again[again.length >> 1] ^= 0xff;
    await fs.writeFile(cache, again);
    const flipped = await backUp();
    expect(flipped.stderr).toContain('is damaged or truncated and was ignored');
    expect(flipped.opened.length).toBe(FILES + 1);
    await expectRestoresTree(flipped.name);
  });

  it('a cache edited by hand, its hash made anew, that gives a chunk another length than the index is not used for that file', async () => {
    await settle();
    await backUp();
    const cache = await cacheFile();
    const bytes = await fs.readFile(cache);
    // The record after its name: stat and header (72 bytes), chunk count, then the first chunk's id and length.
    const name = Buffer.from('./f2.txt');
    const lengthAt = bytes.indexOf(name) + name.length + 72 + 4 + 32;
    bytes.writeUInt32BE(bytes.readUInt32BE(lengthAt) + 1, lengthAt);
    const body = bytes.subarray(0, bytes.length - 32);
    createHash('sha256').update(body).digest().copy(bytes, body.length);
    await fs.writeFile(cache, bytes);
    const b = await backUp();
    await expectRestoresTree(b.name);
    expect(b.opened).toEqual(['f2.txt']);
  });
});

describe('files cache records', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-fcache-'));
  });
  afterAll(async () => fs.rm(dir, { recursive: true, force: true }));

  const stat = { size: 5000, mtimeNs: 1_765_000_000_123_456_789n, ctimeNs: 1_765_000_001_000_000_001n, ino: 4242n, dev: 2049n };
  const owner = { mode: 0o100644, uid: 1000, gid: 100 };
  const refs = new ChunkRefList();
  refs.push(Buffer.alloc(32, 1), 3000);
  refs.push(Buffer.alloc(32, 2), 2512);
  /** A member whose header must not be needed: a version 2 cache compares the fields it is made from. */
  const member = (name: string, changed: Partial<typeof stat & typeof owner> = {}): CachedMember => ({
    name: Buffer.from(name),
    stat: { ...stat, ...owner, ...changed },
    get header(): Buffer {
      throw new Error('the header was made');
    },
  });
  const ids = (r: ChunkRefs | undefined) => r && Array.from({ length: r.length }, (_, i) => r.idAt(i).toString('hex'));

  const started = 1_765_000_010_000_000_000n;
  const at = (ago: bigint, dev = 2049n, whole = false) => {
    const ctimeNs = started - ago;
    return { stat: { ...stat, dev, ctimeNs: whole ? ctimeNs - (ctimeNs % 1_000_000_000n) : ctimeNs + 7n } };
  };

  it('trusts a ctime older than the walk by the clock window: 100 ms on a local nanosecond file system, 3 s elsewhere', () => {
    const clockOnly = 0n;
    expect(settled(at(150_000_000n), started, 2049n, clockOnly)).toBe(true);
    expect(settled(at(50_000_000n), started, 2049n, clockOnly)).toBe(false);
    // Changed after the walk began (a clock set back, or the walk already under way): never.
    expect(settled(at(-5_000_000_000n), started, 2049n, clockOnly)).toBe(false);
    // Another device below the root (a mount point), no local device known, or whole seconds: 3 s.
    expect(settled(at(1_000_000_000n, 2050n), started, 2049n, clockOnly)).toBe(false);
    expect(settled(at(1_000_000_000n), started, undefined, clockOnly)).toBe(false);
    expect(settled(at(1_500_000_000n, 2049n, true), started, 2049n, clockOnly)).toBe(false);
    expect(settled(at(3_100_000_000n, 2050n), started, 2049n, clockOnly)).toBe(true);
    expect(settled(at(4_000_000_000n, 2049n, true), started, undefined, clockOnly)).toBe(true);
  });

  it("trusts a ctime only once older than the kernel's writeback delay too, and none when the flusher is off", () => {
    // vm.dirty_expire_centisecs 3000 + vm.dirty_writeback_centisecs 500 + 5 s: what this machine's /proc says, by default.
    expect(settled(at(10_000_000_000n), started, 2049n)).toBe(false);
    expect(settled(at(39_000_000_000n), started, 2049n, 40_000_000_000n)).toBe(false);
    expect(settled(at(41_000_000_000n), started, 2049n, 40_000_000_000n)).toBe(true);
    expect(settled(at(41_000_000_000n, 2050n), started, 2049n, 40_000_000_000n)).toBe(true);
    expect(settled(at(86_400_000_000_000n), started, 2049n, null)).toBe(false);
  });

  it('takes a file whose name, stat and header fields are all as recorded, without making its header; any one changed is read again', async () => {
    const next = new FilesCacheBuilder();
    next.add(member('./a'), refs);
    const file = path.join(dir, 'v2');
    next.save(file);
    expect((await fs.readFile(file)).readUInt32BE(8)).toBe(2);
    const { cache } = FilesCache.load(file);
    expect(ids(cache!.match(member('./a')))).toEqual(ids(refs));
    for (const changed of [
      { size: 5001 },
      { mtimeNs: stat.mtimeNs + 1n },
      { ctimeNs: stat.ctimeNs - 1n },
      { ino: 4243n },
      { dev: 2050n },
    ]) {
      expect(
        cache!.match(member('./a', changed)),
        JSON.stringify(changed, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
      ).toBeUndefined();
    }
    // What the header holds beyond the stat: a chmod or chown that kept the ctime is read again too.
    for (const changed of [{ mode: 0o100600 }, { mode: 0o120644 }, { uid: 0 }, { gid: 0 }]) {
      expect(cache!.match(member('./a', changed)), JSON.stringify(changed)).toBeUndefined();
    }
    expect(cache!.match(member('./b'))).toBeUndefined();
  });

  it('still uses a version 1 cache, comparing each header by its hash', async () => {
    const header = Buffer.alloc(1536, 7);
    // A version 1 file, as the previous release wrote it.
    const name = Buffer.from('./a');
    const record = Buffer.alloc(2 + name.length + 40 + 32 + 4 + refs.length * 36);
    let p = record.writeUInt16BE(name.length, 0);
    p += name.copy(record, p);
    p = record.writeBigUInt64BE(BigInt(stat.size), p);
    p = record.writeBigInt64BE(stat.mtimeNs, p);
    p = record.writeBigInt64BE(stat.ctimeNs, p);
    p = record.writeBigUInt64BE(stat.ino, p);
    p = record.writeBigUInt64BE(stat.dev, p);
    p += createHash('sha256').update(header).digest().copy(record, p);
    p = record.writeUInt32BE(refs.length, p);
    for (const r of refs) p = record.writeUInt32BE(r.length, p + r.id.copy(record, p));
    const head = Buffer.alloc(16);
    head.write('AZSFCACH', 0, 'latin1');
    head.writeUInt32BE(1, 8);
    head.writeUInt32BE(1, 12);
    const body = Buffer.concat([head, record]);
    const file = path.join(dir, 'v1');
    await fs.writeFile(file, Buffer.concat([body, createHash('sha256').update(body).digest()]));
    const { cache, note } = FilesCache.load(file);
    expect(note).toBeUndefined();
    const withHeader = (h: Buffer): CachedMember => ({ name, stat: { ...stat, ...owner }, header: h });
    expect(ids(cache!.match(withHeader(header)))).toEqual(ids(refs));
    expect(cache!.match(withHeader(Buffer.alloc(1536, 8)))).toBeUndefined();
    expect(cache!.match({ ...withHeader(header), stat: { ...stat, ...owner, ino: 1n } })).toBeUndefined();
  });

  it('ignores a cache of a version it does not know (a newer release ran here) with a note that says so, not that it is damaged', async () => {
    const next = new FilesCacheBuilder();
    next.add(member('./a'), refs);
    const bytes = next.toBuffer();
    bytes.writeUInt32BE(3, 8);
    const body = bytes.subarray(0, bytes.length - 32);
    createHash('sha256').update(body).digest().copy(bytes, body.length);
    const file = path.join(dir, 'v3');
    await fs.writeFile(file, bytes);
    const { cache, note } = FilesCache.load(file);
    expect(cache).toBeUndefined();
    expect(note).toContain('version 3');
    expect(note).not.toContain('damaged');
  });
});
