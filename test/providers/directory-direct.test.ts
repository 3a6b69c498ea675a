import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAzsError } from '../../src/errors.js';
import { directIo } from '../../src/native/direct-io.js';
import { openBeneath } from '../../src/native/open-beneath.js';
import { createProvider } from '../../src/providers/index.js';
import { canMount, mountTmpfs, unmount } from '../support/mounts.js';
import { exportAll } from '../support/provider-fixtures.js';

/**
 * A restore writes a role's large plain files itself, straight to disk (O_DIRECT), and leaves the
 * rest to GNU tar (src/providers/direct-files.ts). What comes back must be what GNU tar would have
 * made: the same bytes, mode (set-id bits too), owner, times to the nanosecond and hard links; a
 * file with extended attributes still gets them. And an archive that names such a file twice, or a
 * disk that fills in the middle of one, changes nothing.
 */

const MiB = 1024 * 1024;
const haveAddons = directIo() !== undefined && openBeneath() !== undefined;
const asRoot = process.getuid?.() === 0;

let tmp: string;
let src: string;

/** Every entry below `root` (the root too): type, mode, owner, size, links, mtime to the nanosecond. */
function manifest(root: string): string {
  return execFileSync('find', ['.', '-printf', '%p %y %m %U %G %s %n %T@\\n'], { cwd: root, encoding: 'utf8' })
    .split('\n')
    .sort()
    .join('\n');
}

/** The pages of `file` the page cache holds now. */
function residentPages(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'PAGES', file], { encoding: 'utf8' }).trim());
}

/**
 * The calls strace logged on the descriptor of a file opened with O_DIRECT after that descriptor
 * was closed, until an open hands the number out again: each one a write, a truncation, a chmod or
 * a close aimed at whatever file has that number by then.
 */
function callsAfterClose(log: string): string[] {
  const direct = new Set<number>();
  const closed = new Set<number>();
  const calls: string[] = [];
  // A call another thread interrupted is logged in two lines; it is taken whole where it ended.
  const started = new Map<string, string>();
  const lines: string[] = [];
  for (const line of log.split('\n')) {
    const unfinished = /^(\d+)\s+(.*) <unfinished \.\.\.>$/.exec(line);
    const resumed = /^(\d+)\s+<\.\.\. \w+ resumed>(.*)$/.exec(line);
    if (unfinished) started.set(unfinished[1]!, unfinished[2]!);
    else if (resumed) lines.push(`${resumed[1]} ${started.get(resumed[1]!) ?? ''}${resumed[2]}`);
    else lines.push(line);
  }
  for (const line of lines) {
    const call = /^\d+\s+(\w+)\((\d+)?/.exec(line);
    if (!call) continue;
    const [, name, first] = call;
    if (!['close', 'pwrite64', 'ftruncate', 'fchmod', 'fchown', 'utimensat'].includes(name!)) {
      // Any other call traced makes descriptors: the numbers it hands out are in use again.
      const made = [...(/\[(\d+), (\d+)\]/.exec(line)?.slice(1) ?? []), /= (\d+)$/.exec(line)?.[1]].filter((n) => n !== undefined);
      for (const fd of made) closed.delete(Number(fd));
      if (name === 'openat' && /O_DIRECT(?!ORY)/.test(line) && !line.includes('.azs-direct-probe') && made.length > 0)
        direct.add(Number(made[0]));
      continue;
    }
    if (first === undefined || !direct.has(Number(first))) continue;
    if (closed.has(Number(first))) calls.push(line);
    if (name === 'close' && /= 0$/.test(line)) closed.add(Number(first));
  }
  return calls;
}

async function writeWithTime(file: string, data: Buffer, time: string): Promise<void> {
  await fs.writeFile(file, data);
  execFileSync('touch', ['-h', '-d', time, file]);
}

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-direct-'));
  src = path.join(tmp, 'data');
  await fs.mkdir(path.join(src, 'blobs', 'sealed'), { recursive: true });
  await writeWithTime(path.join(src, 'blobs', 'exact.bin'), randomBytes(MiB), '@1700000000.123456789');
  await writeWithTime(path.join(src, 'blobs', 'odd.bin'), randomBytes(3 * MiB + 123), '@1600000000.987654321');
  await writeWithTime(path.join(src, 'blobs', 'just-over.bin'), randomBytes(MiB + 1), '@1500000000.000000001');
  await fs.link(path.join(src, 'blobs', 'exact.bin'), path.join(src, 'blobs', 'exact-link.bin'));
  await fs.writeFile(path.join(src, 'blobs', 'sealed', 'inside.bin'), randomBytes(2 * MiB));
  await fs.writeFile(path.join(src, 'small.json'), '{"a":1}\n');
  await fs.chmod(path.join(src, 'blobs', 'sealed'), 0o555);
  if (asRoot) {
    await fs.chown(path.join(src, 'blobs', 'odd.bin'), 1234, 5678);
    await fs.chmod(path.join(src, 'blobs', 'odd.bin'), 0o6750);
  }
});
afterEach(async () => {
  await fs.chmod(path.join(src, 'blobs', 'sealed'), 0o755).catch(() => undefined);
  await fs.rm(tmp, { recursive: true, force: true });
});

describe.skipIf(!haveAddons)('large files a restore writes itself', () => {
  it('come back as GNU tar would make them, and are written past the page cache', async () => {
    const role = await createProvider({ name: 'Blobs', provider: 'directory', restoreOrder: 1, path: src });
    const bytes = await exportAll(role);
    const dest = path.join(tmp, 'restored');
    // Pieces of every size, so headers and data fall across chunk edges.
    const pieces: Buffer[] = [];
    for (let at = 0, n = 1; at < bytes.length; at += n, n = (n * 7 + 3) % 70_001) pieces.push(bytes.subarray(at, at + n));
    await role.import(Readable.from(pieces), { destination: dest });
    expect(manifest(dest)).toBe(manifest(src));
    // Before anything reads them: none of their pages were left in the page cache.
    for (const f of ['blobs/exact.bin', 'blobs/odd.bin', 'blobs/just-over.bin', 'blobs/sealed/inside.bin'])
      expect(residentPages(path.join(dest, f)), f).toBe(0);
    execFileSync('diff', ['-r', src, dest]);
    await fs.chmod(path.join(dest, 'blobs', 'sealed'), 0o755);
  });

  it('a large file with extended attributes keeps them (GNU tar writes it)', async () => {
    const file = path.join(src, 'blobs', 'odd.bin');
    execFileSync('setfattr', ['-n', 'user.azs.note', '-v', 'kept', file]);
    const role = await createProvider({ name: 'Blobs', provider: 'directory', restoreOrder: 1, path: src });
    const bytes = await exportAll(role);
    const dest = path.join(tmp, 'restored');
    await role.import(Readable.from([bytes]), { destination: dest });
    expect(
      execFileSync('getfattr', ['--only-values', '-n', 'user.azs.note', path.join(dest, 'blobs', 'odd.bin')], { encoding: 'utf8' }),
    ).toBe('kept');
    expect(manifest(dest)).toBe(manifest(src));
    await fs.chmod(path.join(dest, 'blobs', 'sealed'), 0o755);
  });

  it('an archive that names a large file twice is refused, and the folder stays as it was', async () => {
    const other = path.join(tmp, 'other');
    await fs.mkdir(other);
    await fs.writeFile(path.join(other, 'big.bin'), randomBytes(2 * MiB));
    const twice = path.join(tmp, 'twice.tar');
    execFileSync('tar', ['--format=posix', '-C', other, '-cf', twice, 'big.bin']);
    await fs.writeFile(path.join(other, 'big.bin'), randomBytes(2 * MiB));
    execFileSync('tar', ['--format=posix', '-C', other, '-rf', twice, 'big.bin']);
    const dest = path.join(tmp, 'dest');
    await fs.mkdir(dest);
    await fs.writeFile(path.join(dest, 'before.txt'), 'as it was\n');
    const role = await createProvider({ name: 'Twice', provider: 'directory', restoreOrder: 1, path: dest });
    const err = await role.import(Readable.from([await fs.readFile(twice)])).catch((e: unknown) => e);
    expect(isAzsError(err) && err.errorId).toBe('UnsafeArchiveEntry');
    expect(String((err as Error).message)).toContain('appears twice');
    expect((await fs.readdir(tmp)).filter((n) => n.includes('azs-'))).toEqual([]);
    expect(await fs.readdir(dest)).toEqual(['before.txt']);
  });

  // Names are bytes on Linux; the archive keeps them so and GNU tar makes them so. The scanner reads
  // them as UTF-8, and a large file was made under that reading: a Latin-1 'café.bin' came back as
  // 'caf\uFFFD.bin', and two such names read alike, so the restore was refused as tampered with.
  it('large files whose names are not UTF-8 come back under their own names', async () => {
    const legacy = path.join(tmp, 'legacy');
    await fs.mkdir(legacy);
    const named = (latin1: string): Buffer => Buffer.concat([Buffer.from(`${legacy}/`), Buffer.from(latin1, 'latin1')]);
    await fs.writeFile(named('caf\xe9.bin'), randomBytes(MiB));
    await fs.writeFile(named('caf\xe8.bin'), randomBytes(2 * MiB));
    await fs.writeFile(named('r\xe9sum\xe9.pdf'), randomBytes(MiB + 4096));
    const role = await createProvider({ name: 'Legacy', provider: 'directory', restoreOrder: 1, path: legacy });
    const bytes = await exportAll(role);
    const dest = path.join(tmp, 'restored');
    await role.import(Readable.from([bytes]), { destination: dest });
    // The names byte for byte (find's output read as UTF-8 would make them alike again).
    const names = (root: string): string[] => {
      const listed = execFileSync('find', ['.', '-print0'], { cwd: root });
      const out: string[] = [];
      for (let at = 0, end = listed.indexOf(0); end >= 0; at = end + 1, end = listed.indexOf(0, at))
        out.push(listed.subarray(at, end).toString('hex'));
      return out.sort();
    };
    expect(names(dest)).toEqual(names(legacy));
    expect(manifest(dest)).toBe(manifest(legacy));
    execFileSync('diff', ['-r', legacy, dest]);
  });

  // A cancelled restore closed each large file's descriptor (abandon) while the file's writing went
  // on: the rest of the chunk was still copied and written, then cut, chowned, chmodded and closed,
  // through a number the process may have handed to another file meanwhile.
  it('a restore cancelled in the middle of a large file does nothing more through its closed descriptor', async () => {
    const big = path.join(tmp, 'big');
    await fs.mkdir(big);
    await fs.writeFile(path.join(big, 'a-large.bin'), randomBytes(64 * MiB));
    await fs.writeFile(path.join(big, 'b-large.bin'), randomBytes(2 * MiB));
    const role = await createProvider({ name: 'Big', provider: 'directory', restoreOrder: 1, path: big });
    const bytes = await exportAll(role);
    const dest = path.join(tmp, 'dest');
    await fs.mkdir(dest);
    await fs.writeFile(path.join(dest, 'before.txt'), 'as it was\n');
    // This process's own system calls, every thread's.
    const log = path.join(tmp, 'strace.log');
    const strace = spawn(
      'strace',
      [
        '-f',
        '-qq',
        '-e',
        'trace=openat,openat2,open,creat,dup,dup2,dup3,fcntl,pipe2,socket,socketpair,accept4,eventfd2,epoll_create1,memfd_create,close,pwrite64,ftruncate,fchmod,fchown,utimensat',
        '-o',
        log,
        '-p',
        `${process.pid}`,
      ],
      {
        stdio: 'ignore',
      },
    );
    try {
      for (let i = 0; i < 100 && !(await fs.stat(log).catch(() => undefined)); i++) await delay(50);
      await delay(300);
      // Cancelled once 8 MiB of the 64 MiB file are written, the archive given in one chunk.
      const cancel = new AbortController();
      const watch = setInterval(() => {
        const staged = readdirSync(tmp).find((n) => n.startsWith('.dest.azs-staging-'));
        const size = staged ? statSync(path.join(tmp, staged, 'a-large.bin'), { throwIfNoEntry: false })?.size : undefined;
        if ((size ?? 0) >= 8 * MiB) cancel.abort();
      }, 1);
      const err = await role.import(Readable.from([bytes]), { destination: dest, signal: cancel.signal }).catch((e: unknown) => e);
      clearInterval(watch);
      expect(isAzsError(err) && err.errorId).toBe('DirectoryImportCancelled');
      // Whatever was still under way has had time to land.
      await delay(500);
    } finally {
      strace.kill('SIGINT');
      await new Promise((resolve) => strace.once('exit', resolve));
    }
    expect(callsAfterClose(await fs.readFile(log, 'utf8'))).toEqual([]);
    expect(await fs.readdir(dest)).toEqual(['before.txt']);
    expect((await fs.readdir(tmp)).filter((n) => n.includes('azs-'))).toEqual([]);
  }, 60_000);

  // The direct writer makes files through the addon written for shares, whose errors read
  // 'below the share's root: No space left on device': a restore into a local folder that ran out of
  // inodes said so, naming no file, where GNU tar's said 'tar: ./e.bin: Cannot open: No space left'.
  it.skipIf(!canMount)('a disk out of inodes names the large file it could not make, and no share', async () => {
    const many = path.join(tmp, 'many');
    await fs.mkdir(many);
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f']) await fs.writeFile(path.join(many, `${name}.bin`), randomBytes(MiB));
    const role = await createProvider({ name: 'Many', provider: 'directory', restoreOrder: 1, path: many });
    const bytes = await exportAll(role);
    const mnt = path.join(tmp, 'few-inodes');
    await fs.mkdir(mnt);
    // The file system's root, the role's folder, its staging folder and four files.
    expect(mountTmpfs(mnt, 'size=64m,nr_inodes=7')).toBe(true);
    try {
      const dest = path.join(mnt, 'role');
      await fs.mkdir(dest);
      const err = await role.import(Readable.from([bytes]), { destination: dest }).catch((e: unknown) => e);
      expect(isAzsError(err) && err.errorId).toBe('DestinationFull');
      expect((err as Error).message).toMatch(/[a-f]\.bin'/);
      expect((err as Error).message).not.toContain('share');
      expect(await fs.readdir(mnt)).toEqual(['role']);
    } finally {
      unmount(mnt);
    }
  });

  it.skipIf(!canMount)(
    'a disk that fills in the middle of a large file fails the restore as DestinationFull, the folder as it was',
    async () => {
      const role = await createProvider({ name: 'Blobs', provider: 'directory', restoreOrder: 1, path: src });
      const bytes = await exportAll(role);
      const mnt = path.join(tmp, 'small');
      await fs.mkdir(mnt);
      expect(mountTmpfs(mnt, 'size=5m')).toBe(true);
      try {
        const dest = path.join(mnt, 'role');
        await fs.mkdir(dest);
        await fs.writeFile(path.join(dest, 'before.txt'), 'as it was\n');
        const err = await role.import(Readable.from([bytes]), { destination: dest }).catch((e: unknown) => e);
        expect(isAzsError(err) && err.errorId).toBe('DestinationFull');
        expect(isAzsError(err) && err.exitCode).toBe(14);
        expect(await fs.readdir(mnt)).toEqual(['role']);
        expect(await fs.readdir(dest)).toEqual(['before.txt']);
      } finally {
        unmount(mnt);
      }
    },
  );
});
