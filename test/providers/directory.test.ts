import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { createProvider } from '../../src/providers/index.js';
import type { Provider } from '../../src/providers/provider.js';
import { currentOwner } from '../../src/process/owner.js';
import { deadPid } from '../support/cli.js';
import { craftTar, exportAll, paxBody, snapshotTree, type CraftedEntry } from '../support/provider-fixtures.js';

let tmp: string;
let dest: string;
let outside: string;
let provider: Provider;

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-dir-'));
  dest = path.join(tmp, 'root', 'pki');
  outside = path.join(tmp, 'outside');
  await fs.mkdir(dest, { recursive: true });
  await fs.mkdir(outside);
  await fs.writeFile(path.join(dest, 'ca.crt'), 'the current CA\n');
  provider = await createProvider({ name: 'CA', provider: 'directory', restoreOrder: 1, path: dest });
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function expectRefused(entries: CraftedEntry[], named: string): Promise<void> {
  const before = await snapshotTree(dest);
  const err = await provider.import(Readable.from([craftTar(entries)])).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AzsError);
  expect(err).toMatchObject({ errorId: 'UnsafeArchiveEntry', category: 'InvalidData', exitCode: 12, targetObject: named });
  expect((err as AzsError).message).toContain(`'${named}'`);
  expect(await snapshotTree(dest)).toEqual(before);
  expect(await fs.readdir(outside)).toEqual([]);
  expect(await fs.readdir(path.dirname(dest))).toEqual(['pki']);
}

describe('directory provider refuses unsafe archives', () => {
  it('refuses ../ in a path', async () => {
    await expectRefused(
      [
        { name: 'ok.txt', type: 'file', body: 'fine' },
        { name: '../evil', type: 'file', body: 'x' },
      ],
      '../evil',
    );
    await expect(fs.access(path.join(tmp, 'root', 'evil'))).rejects.toThrow();
  });

  it('refuses .. hidden in the middle of a path', async () => {
    await expectRefused([{ name: 'a/../../../outside/evil', type: 'file', body: 'x' }], 'a/../../../outside/evil');
  });

  it('refuses absolute paths', async () => {
    const target = path.join(outside, 'abs-evil');
    await expectRefused([{ name: target, type: 'file', body: 'x' }], target);
  });

  it('refuses writing through a symbolic link to an absolute folder', async () => {
    await expectRefused(
      [
        { name: 'esc', type: 'symlink', link: outside },
        { name: 'esc/pwned', type: 'file', body: 'x' },
      ],
      'esc/pwned',
    );
  });

  it('refuses writing through a relative symbolic link that climbs out', async () => {
    await expectRefused(
      [
        { name: 'sub/', type: 'dir' },
        { name: 'sub/up', type: 'symlink', link: '../../../outside' },
        { name: 'sub/up/pwned', type: 'file', body: 'x' },
      ],
      'sub/up/pwned',
    );
  });

  it('refuses replacing a symbolic link by a file (which would write through it)', async () => {
    await expectRefused(
      [
        { name: 'cfg', type: 'symlink', link: path.join(outside, 'target') },
        { name: 'cfg', type: 'file', body: 'x' },
      ],
      'cfg',
    );
  });

  it('refuses a link in place of a folder it made, which would lead the folder fix-ups outside', async () => {
    const victim = path.join(tmp, 'victim');
    await fs.writeFile(victim, 'do not touch', { mode: 0o600 });
    const old = new Date('2001-01-01T00:00:00Z');
    await fs.utimes(victim, old, old);
    const untouched = async () => {
      const st = await fs.stat(victim);
      expect(st.mode & 0o7777).toBe(0o600);
      expect(st.mtimeMs).toBe(old.getTime());
    };
    await expectRefused(
      [
        { name: './', type: 'dir' },
        { name: 'd/', type: 'dir' },
        { name: 'd', type: 'symlink', link: victim },
      ],
      'd',
    );
    await untouched();
    // Made a folder by an entry inside it, and by a relative chain.
    await expectRefused(
      [
        { name: 'e', type: 'symlink', link: victim },
        { name: 'd/f', type: 'file', body: 'x' },
        { name: 'd', type: 'symlink', link: 'e' },
      ],
      'd',
    );
    await untouched();
    await expectRefused(
      [
        { name: 'd/', type: 'dir' },
        { name: 'f', type: 'file', body: 'x' },
        { name: 'd', type: 'hardlink', link: 'f' },
      ],
      'd',
    );
  });

  it('restores a hard link to a symbolic link, and guards the second name as a link too', async () => {
    await fs.symlink('ca.crt', path.join(dest, 'current'));
    await fs.link(path.join(dest, 'current'), path.join(dest, 'current-hard'));
    const bytes = await exportAll(provider);
    const restored = path.join(tmp, 'restored');
    await provider.import(Readable.from([bytes]), { destination: restored });
    expect(await fs.readlink(path.join(restored, 'current-hard'))).toBe('ca.crt');
    expect((await fs.lstat(path.join(restored, 'current-hard'))).ino).toBe((await fs.lstat(path.join(restored, 'current'))).ino);

    await expectRefused(
      [
        { name: 'esc', type: 'symlink', link: outside },
        { name: 'esc2', type: 'hardlink', link: 'esc' },
        { name: 'esc2/pwned', type: 'file', body: 'x' },
      ],
      'esc2/pwned',
    );
  });

  it('refuses hard links that point outside', async () => {
    await expectRefused([{ name: 'h', type: 'hardlink', link: '../../outside/x' }], 'h');
    await expectRefused([{ name: 'h', type: 'hardlink', link: '/etc/passwd' }], 'h');
  });

  it('keeps an absolute symbolic link verbatim when nothing is written through it', async () => {
    await provider.import(
      Readable.from([
        craftTar([
          { name: './', type: 'dir' },
          { name: 'ssl', type: 'symlink', link: '/etc/ssl/certs' },
          { name: 'sib', type: 'symlink', link: '../sibling/file' },
          { name: 'conf/a.txt', type: 'file', body: 'hello' },
        ]),
      ]),
    );
    expect(await fs.readlink(path.join(dest, 'ssl'))).toBe('/etc/ssl/certs');
    expect(await fs.readlink(path.join(dest, 'sib'))).toBe('../sibling/file');
    expect(await fs.readFile(path.join(dest, 'conf/a.txt'), 'utf8')).toBe('hello');
    // The old content is gone: a restore replaces the folder, it does not merge into it.
    await expect(fs.access(path.join(dest, 'ca.crt'))).rejects.toThrow();
  });

  it('refuses archives whose headers it cannot vouch for, and changes nothing', async () => {
    const cases: [CraftedEntry[], object][] = [
      // GNU tar would skip a pax global header's settings differently from a per-entry one.
      [
        [
          { name: 'g', type: 'file', flag: 'g', body: paxBody({ path: 'x' }) },
          { name: 'a', type: 'file', body: 'a' },
        ],
        { errorId: 'DirectoryArchiveInvalid' },
      ],
      [
        [
          { name: 'PaxHeader/s', type: 'file', flag: 'x', body: paxBody({ 'GNU.sparse.major': '1' }) },
          { name: 's', type: 'file', body: 'x' },
        ],
        { errorId: 'UnsupportedArchiveEntry', targetObject: 's' },
      ],
      [[{ name: 'dev', type: 'file', flag: '3' }], { errorId: 'UnsupportedArchiveEntry', targetObject: 'dev' }],
    ];
    for (const [entries, expected] of cases) {
      const before = await snapshotTree(dest);
      await expect(provider.import(Readable.from([craftTar(entries)]))).rejects.toMatchObject(expected);
      expect(await snapshotTree(dest)).toEqual(before);
      expect(await fs.readdir(path.dirname(dest))).toEqual(['pki']);
    }
  });

  it('rejects data that is not a tar archive and changes nothing', async () => {
    const before = await snapshotTree(dest);
    const garbage = Buffer.alloc(4096, 0x41);
    await expect(provider.import(Readable.from([garbage]))).rejects.toMatchObject({ errorId: 'DirectoryArchiveInvalid' });
    expect(await snapshotTree(dest)).toEqual(before);
  });
});

describe('directory provider, other behaviour', () => {
  it('leaves FIFOs and sockets out of a round trip, and keeps everything else', async () => {
    const { execFileSync } = await import('node:child_process');
    const net = await import('node:net');
    execFileSync('mkfifo', [path.join(dest, 'control.fifo')]);
    const socketPath = path.join(dest, 'agent.sock');
    const server = net.createServer().listen(socketPath);
    await new Promise((r) => server.once('listening', r));
    await fs.mkdir(path.join(dest, 'sub'), { mode: 0o750 });
    await fs.writeFile(path.join(dest, 'sub', 'x.pem'), 'x', { mode: 0o600 });
    try {
      const bytes = await exportAll(provider);
      const restored = path.join(tmp, 'restored');
      await provider.import(Readable.from([bytes]), { destination: restored });
      expect((await fs.readdir(restored)).sort()).toEqual(['ca.crt', 'sub']);
      expect((await fs.stat(path.join(restored, 'sub'))).mode & 0o777).toBe(0o750);
      expect((await fs.stat(path.join(restored, 'sub', 'x.pem'))).mode & 0o777).toBe(0o600);
    } finally {
      server.close();
    }
  });

  it('follows a registered path that is a symbolic link and keeps the link', async () => {
    const real = path.join(tmp, 'real-pki');
    await fs.mkdir(real);
    await fs.writeFile(path.join(real, 'a'), 'A');
    const link = path.join(tmp, 'pki-link');
    await fs.symlink(real, link);
    const p = await createProvider({ name: 'CA', provider: 'directory', restoreOrder: 1, path: link });
    const bytes = await exportAll(p);
    await fs.writeFile(path.join(real, 'a'), 'changed');
    await p.import(Readable.from([bytes]));
    expect((await fs.lstat(link)).isSymbolicLink()).toBe(true);
    expect(await fs.readFile(path.join(real, 'a'), 'utf8')).toBe('A');
  });

  it('refuses a destination that is a file and leaves it alone', async () => {
    const file = path.join(tmp, 'a-file');
    await fs.writeFile(file, 'keep me');
    const bytes = await exportAll(provider);
    await expect(provider.import(Readable.from([bytes]), { destination: file })).rejects.toMatchObject({
      errorId: 'DirectoryDestinationNotAFolder',
    });
    expect(await fs.readFile(file, 'utf8')).toBe('keep me');
  });

  it('removes what a swap journal of a dead process names, and nothing else', async () => {
    const parent = path.dirname(dest);
    const me = currentOwner()!;
    const journal = (id: string, owner: object) =>
      fs.writeFile(
        path.join(parent, `.pki.azs-swap-${id}`),
        JSON.stringify({ format: 'azsbackup-swap/1', owner, phase: 'staging', dest: 'pki', staging: `.pki.azs-staging-${id}` }),
      );
    const dead = 'deaddeaddeaddead';
    const live = 'livelivelivelive';
    await journal(dead, { ...me, pid: await deadPid() });
    await fs.mkdir(path.join(parent, `.pki.azs-staging-${dead}`));
    await journal(live, me);
    await fs.mkdir(path.join(parent, `.pki.azs-staging-${live}`));
    // Names without a journal (an older version's, or not ours) prove nothing.
    await fs.mkdir(path.join(parent, '.pki.azs-staging-AbC123'));
    await fs.mkdir(path.join(parent, '.pki.azs-old-XyZ789'));
    const bytes = await exportAll(provider);
    await provider.import(Readable.from([bytes]));
    expect((await fs.readdir(parent)).sort()).toEqual([
      '.pki.azs-old-XyZ789',
      '.pki.azs-staging-AbC123',
      `.pki.azs-staging-${live}`,
      `.pki.azs-swap-${live}`,
      'pki',
    ]);
  });

  it('a backup removes both files of a journal killed while it was rewritten (the journal and its complete temporary file), with what they name', async () => {
    const parent = path.dirname(dest);
    const id = 'RewrittenRewrite';
    const owner = { ...currentOwner()!, pid: await deadPid() };
    const record = (phase: string) =>
      JSON.stringify({ format: 'azsbackup-swap/1', owner, phase, dest: 'pki', staging: `.pki.azs-staging-${id}` });
    // Killed after the rewrite's temporary file was written whole, before it took the journal's name.
    await fs.writeFile(path.join(parent, `.pki.azs-swap-${id}`), record('staging'));
    await fs.writeFile(path.join(parent, `.pki.azs-swap-${id}.tmp`), record('staging'));
    await fs.mkdir(path.join(parent, `.pki.azs-staging-${id}`));
    await exportAll(provider);
    expect((await fs.readdir(parent)).sort()).toEqual(['pki']);
  });

  it("removes a journal's temporary file left empty by a kill between its creation and its write, once it is old", async () => {
    const parent = path.dirname(dest);
    const old = path.join(parent, '.pki.azs-swap-EmptyEmptyEmpty1.tmp');
    const fresh = path.join(parent, '.pki.azs-swap-EmptyEmptyEmpty2.tmp');
    await fs.writeFile(old, '');
    await fs.writeFile(fresh, '{"format":"azsbackup-sw');
    const hourAgo = new Date(Date.now() - 3_600_000);
    await fs.utimes(old, hourAgo, hourAgo);
    await provider.import(Readable.from([await exportAll(provider)]));
    // The fresh one may be a writer's this very moment: it stays until it is as old.
    expect((await fs.readdir(parent)).sort()).toEqual(['.pki.azs-swap-EmptyEmptyEmpty2.tmp', 'pki']);
  });

  it('stops on an aborted signal and changes nothing', async () => {
    const bytes = await exportAll(provider);
    const ac = new AbortController();
    ac.abort();
    const before = await snapshotTree(dest);
    await expect(provider.import(Readable.from([bytes]), { signal: ac.signal })).rejects.toMatchObject({
      category: 'OperationStopped',
      exitCode: 130,
    });
    expect(await snapshotTree(dest)).toEqual(before);
  });
});

describe('times of folders and links', () => {
  // GNU tar sets them to the nanosecond; the restore then set every folder's and link's time again
  // through Node, which takes microseconds and truncates: a folder backed up at .343083300 came
  // back at .342999, a millisecond early to any tool that compares milliseconds.
  it('come back to the nanosecond, as files do', async () => {
    const touchNs = (p: string, when: string) => execFileSync('touch', ['-h', '-d', when, p]);
    await fs.mkdir(path.join(dest, 'keys'));
    await fs.writeFile(path.join(dest, 'keys', 'ca.key'), 'k\n');
    await fs.symlink('keys/ca.key', path.join(dest, 'current'));
    touchNs(path.join(dest, 'keys', 'ca.key'), '2024-02-29 12:34:56.123456789');
    touchNs(path.join(dest, 'keys'), '2024-02-29 12:34:56.343083300');
    touchNs(path.join(dest, 'current'), '2024-03-01 00:00:00.000000001');
    touchNs(dest, '2021-06-01 00:00:00.999999999');
    const ns = async () =>
      Promise.all(
        ['keys/ca.key', 'keys', 'current', ''].map(async (rel) => (await fs.lstat(path.join(dest, rel), { bigint: true })).mtimeNs),
      );
    const before = await ns();
    const bytes = await exportAll(provider);
    await fs.rm(dest, { recursive: true });
    await provider.import(Readable.from([bytes]));
    expect(await ns()).toEqual(before);
  });
});
