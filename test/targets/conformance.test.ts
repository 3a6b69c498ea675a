/**
 * One suite, every target: the local folder, an SMB share on a real Samba server, and a blob
 * container on a real Azurite server.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { canRecycle } from '../../src/memory/recycling-readable.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TARGET_KINDS, type TargetKind } from '../../src/targets/location.js';
import { nativeDisabled } from '../../src/native/addon.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { openTarget } from '../../src/targets/index.js';
import { isPartialName } from '../../src/targets/paths.js';
import type { Target } from '../../src/targets/target.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';
import { rejected } from '../support/errors.js';
import { startAzurite, type AzuriteServer } from '../support/azurite.js';

interface Kind {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A fresh, empty root for one test. */
  fresh(): Promise<Target>;
  /** A target whose root folder does not exist. */
  missingRoot(): Target;
  /**
   * True for a target that takes part in buffer recycling (src/memory/recycling-readable.ts): an
   * optional performance capability, not part of the Target contract. The built-in ones do.
   */
  recycles: boolean;
}

function localKind(): Kind {
  let base = '';
  let n = 0;
  return {
    name: 'local folder',
    recycles: true,
    async setup() {
      base = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-targets-'));
    },
    async teardown() {
      await fs.rm(base, { recursive: true, force: true });
    },
    async fresh() {
      const root = path.join(base, `case-${++n}`);
      await fs.mkdir(root);
      return new LocalFolderTarget(root);
    },
    missingRoot: () => new LocalFolderTarget(path.join(base, 'does-not-exist')),
  };
}

function smbKind(): Kind {
  let samba: SambaServer;
  let n = 0;
  const open = (folder: string) =>
    openTarget(`${samba.smbUrl}/${folder}`, { userName: `WORKGROUP\\${samba.userName}`, password: samba.password });
  return {
    name: 'SMB share (Samba)',
    // smbclient's output arrives in pooled memory only through the posix_spawn addon's pipe.
    get recycles() {
      return !nativeDisabled();
    },
    async setup() {
      samba = await startSamba();
    },
    async teardown() {
      await samba?.stop();
    },
    async fresh() {
      const folder = `case-${++n}`;
      await openTarget(samba.smbUrl, { userName: samba.userName, password: samba.password }).mkdir(folder);
      return open(folder);
    },
    missingRoot: () => open('does-not-exist'),
  };
}

function blobKind(): Kind {
  let azurite: AzuriteServer;
  let n = 0;
  const open = (container: string) => openTarget(azurite.url(container, 'site-a/backups'), { accountKey: azurite.accountKey });
  return {
    name: 'blob container (Azurite)',
    recycles: true,
    async setup() {
      azurite = await startAzurite();
    },
    async teardown() {
      await azurite?.stop();
    },
    async fresh() {
      const container = `case-${++n}`;
      await azurite.createContainer(container);
      return open(container);
    },
    missingRoot: () => open('does-not-exist'),
  };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** `total` bytes of a repeatable pseudo-random pattern in 64 KiB chunks, never all in memory. */
function pattern(total: number): { stream: () => Readable; sha256: string } {
  const block = randomBytes(64 * 1024);
  const make = function* () {
    let left = total;
    let i = 0;
    while (left > 0) {
      const chunk = Buffer.from(block.subarray(0, Math.min(left, block.length)));
      chunk.writeUInt32BE(i++ >>> 0, 0);
      left -= chunk.length;
      yield chunk;
    }
  };
  const h = createHash('sha256');
  for (const c of make()) h.update(c);
  return { stream: () => Readable.from(make()), sha256: h.digest('hex') };
}

/**
 * How to stand up each registered kind of target (TARGET_KINDS): a kind added to the registry
 * without a way to stand it up here fails the typecheck and this suite.
 */
const fixtures: Record<TargetKind, () => Kind | undefined> = {
  local: localKind,
  // The SMB run needs smbd, smbclient and root (npm test installs the first two).
  smb: () => (sambaAvailable() ? smbKind() : undefined),
  // Azurite is an npm dev dependency, so the blob run is always made.
  blob: blobKind,
};
const kinds: Kind[] = TARGET_KINDS.map((k) => fixtures[k]()).filter((k): k is Kind => k !== undefined);

it('every registered kind of target has a fixture here', () => {
  expect(Object.keys(fixtures).sort()).toEqual([...TARGET_KINDS].sort());
});

describe.each(kinds)('Target conformance: $name', (kind) => {
  beforeAll(() => kind.setup());
  afterAll(() => kind.teardown());

  it('round-trips an empty file, a small file and a 20 MB stream', async () => {
    const t = await kind.fresh();
    expect(await t.write('empty.bin', Readable.from([]))).toEqual({ bytes: 0 });
    expect((await readAll(await t.read('empty.bin'))).length).toBe(0);

    const small = Buffer.from('hello, share\n');
    expect(await t.write('small.txt', Readable.from([small]))).toEqual({ bytes: small.length });
    expect((await readAll(await t.read('small.txt'))).equals(small)).toBe(true);

    const big = pattern(20 * 1024 * 1024);
    expect(await t.write('big/data.bin', big.stream())).toEqual({ bytes: 20 * 1024 * 1024 });
    const h = createHash('sha256');
    let n = 0;
    for await (const c of await t.read('big/data.bin')) {
      h.update(c as Buffer);
      n += (c as Buffer).length;
    }
    expect(n).toBe(20 * 1024 * 1024);
    expect(h.digest('hex')).toBe(big.sha256);
    expect((await t.stat('big/data.bin'))?.size).toBe(20 * 1024 * 1024);
  });

  it('hands each chunk of a recycling source back once stored, never before (poisoned on return, the file stays whole)', async () => {
    const t = await kind.fresh();
    // Sizes as a backup writes them (a header, whole sealed records, a short last record) and odd ones around them.
    const sizes = [48, 1_048_592, 1_048_592, 65_536, 1_000, 1_048_592, 300_000, 7];
    for (const atomic of [true, false]) {
      const chunks = sizes.map((n, i) => Buffer.alloc(n, i + 1).fill(n & 0xff, 0, 1));
      const expected = createHash('sha256');
      for (const c of chunks) expected.update(c);
      const handedBack = new Set<Buffer>();
      const source = Object.assign(Readable.from(chunks), {
        recycle(chunk: Buffer) {
          handedBack.add(chunk);
          chunk.fill(0xee); // whatever the producer writes next
        },
      });
      const file = `recycled-${String(atomic)}.bin`;
      await t.write(file, source, { atomic });
      const stored = await readAll(await t.read(file));
      expect(stored.length).toBe(sizes.reduce((a, b) => a + b, 0));
      expect(createHash('sha256').update(stored).digest('hex')).toBe(expected.digest('hex'));
      if (kind.recycles) expect(chunks.filter((c) => !handedBack.has(c))).toEqual([]);
    }
  });

  it('reads into memory the reader may hand back: overwriting what came back never changes what is read next', async () => {
    const t = await kind.fresh();
    const data = pattern(9 * 1024 * 1024 + 123);
    await t.write('r.bin', data.stream());
    const source = await t.read('r.bin');
    expect(canRecycle(source)).toBe(kind.recycles);
    const h = createHash('sha256');
    let n = 0;
    await pipeline(
      source,
      new Writable({
        write(c: Buffer, _e, done) {
          h.update(c);
          n += c.length;
          if (canRecycle(source)) source.recycle(c);
          c.fill(0xee); // free again: the next read may land here, and nothing read earlier may change
          done();
        },
      }),
    );
    expect(n).toBe(9 * 1024 * 1024 + 123);
    expect(h.digest('hex')).toBe(data.sha256);
  });

  it('overwrites an existing file', async () => {
    const t = await kind.fresh();
    await t.write('f.txt', Readable.from([Buffer.from('first version, longer')]));
    await t.write('f.txt', Readable.from([Buffer.from('second')]));
    expect((await readAll(await t.read('f.txt'))).toString()).toBe('second');
    expect((await t.list('')).map((e) => e.name)).toEqual(['f.txt']);
  });

  it('replaces a file in one step: mid-write the old file is still there whole', async () => {
    const t = await kind.fresh();
    await t.write('info.xml', Readable.from([Buffer.from('<old/>')]));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let halfSent!: () => void;
    const half = new Promise<void>((resolve) => (halfSent = resolve));
    const source = Readable.from(
      (async function* () {
        yield Buffer.from('<new>');
        halfSent();
        await gate;
        yield Buffer.from('</new>');
      })(),
    );
    const writing = t.write('info.xml', source);
    await half;
    await new Promise((r) => setTimeout(r, 200));
    expect((await readAll(await t.read('info.xml'))).toString()).toBe('<old/>');
    expect((await t.list('')).filter((e) => !isPartialName(e.name)).map((e) => e.name)).toEqual(['info.xml']);
    release();
    await writing;
    expect((await readAll(await t.read('info.xml'))).toString()).toBe('<new></new>');
  });

  it('creates parent folders on write and with mkdir (idempotent)', async () => {
    const t = await kind.fresh();
    await t.write('a/b/c/file.txt', Readable.from([Buffer.from('x')]));
    expect((await t.stat('a'))?.isDirectory).toBe(true);
    expect((await t.stat('a/b/c'))?.isDirectory).toBe(true);
    expect((await t.list('a/b')).map((e) => e.name)).toEqual(['c']);

    await t.mkdir('m/n/o');
    await t.mkdir('m/n/o');
    await t.mkdir('m');
    expect((await t.stat('m/n/o'))?.isDirectory).toBe(true);
    expect(await t.list('m/n/o')).toEqual([]);
  });

  it('lists names with spaces and unicode, with types and sizes', async () => {
    const t = await kind.fresh();
    await t.write('dir/with space.txt', Readable.from([Buffer.from('12345')]));
    await t.write('dir/ünïcødé € 日本.bin', Readable.from([Buffer.from('abc')]));
    await t.write('dir/  two  spaces  A 12', Readable.from([Buffer.from('z')]));
    await t.mkdir('dir/sub folder');
    const before = Date.now();
    const entries = (await t.list('dir')).sort((a, b) => a.name.localeCompare(b.name));
    expect(entries.map((e) => [e.name, e.isDirectory, e.size])).toEqual(
      [
        ['  two  spaces  A 12', false, 1],
        ['sub folder', true, 0],
        ['with space.txt', false, 5],
        ['ünïcødé € 日本.bin', false, 3],
      ].sort((a, b) => (a[0] as string).localeCompare(b[0] as string)),
    );
    for (const e of entries) {
      expect(e.mtime).toBeInstanceOf(Date);
      expect(Math.abs(e.mtime.getTime() - before)).toBeLessThan(5 * 60_000);
    }
    expect(await t.list('no such folder')).toEqual([]);
    expect(await t.list('dir/with space.txt/x').catch(() => [])).toEqual([]);
  });

  it('lists a whole tree at once, with paths, types and sizes; a missing folder is empty', async () => {
    const t = await kind.fresh();
    await t.write('tree/20261127T071531Z/guid one/BackupInfo.xml', Readable.from([Buffer.from('<info/>')]));
    await t.write('tree/20261127T071531Z/guid one/ünï cödé.azsrole', Readable.from([Buffer.from('abc')]));
    await t.write('tree/20261127T071532Z/two.partial/a', Readable.from([Buffer.from('12345')]));
    await t.mkdir('tree/empty stamp');
    await t.write('elsewhere.txt', Readable.from([Buffer.from('not in the tree')]));
    const tree = (await t.listTree('tree'))
      .map((e) => [e.path, e.isDirectory, e.size])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    expect(tree).toEqual([
      ['20261127T071531Z', true, 0],
      ['20261127T071531Z/guid one', true, 0],
      ['20261127T071531Z/guid one/BackupInfo.xml', false, 7],
      ['20261127T071531Z/guid one/ünï cödé.azsrole', false, 3],
      ['20261127T071532Z', true, 0],
      ['20261127T071532Z/two.partial', true, 0],
      ['20261127T071532Z/two.partial/a', false, 5],
      ['empty stamp', true, 0],
    ]);
    expect((await t.listTree('')).map((e) => e.path)).toContain('tree/20261127T071532Z/two.partial/a');
    expect(await t.listTree('no such folder')).toEqual([]);
    expect(await t.listTree('tree/empty stamp')).toEqual([]);
  });

  it('reads many small files at once, with undefined for the missing ones', async () => {
    const t = await kind.fresh();
    await t.write('docs/a.xml', Readable.from([Buffer.from('<a/>')]));
    await t.write('docs/sub dir/b ü.xml', Readable.from([Buffer.from('<b>ü</b>')]));
    await t.write('docs/empty.xml', Readable.from([]));
    // A temporary folder with a space in its name (where the SMB target fetches to) changes nothing.
    const tmpWithSpace = await fs.mkdtemp(path.join(os.tmpdir(), 'azs tmp '));
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = tmpWithSpace;
    let files: (Buffer | Error | undefined)[];
    try {
      files = await t.readSmallFiles(['docs/a.xml', 'docs/missing.xml', 'docs/sub dir/b ü.xml', 'no/such/folder.xml', 'docs/empty.xml']);
    } finally {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
      await fs.rm(tmpWithSpace, { recursive: true, force: true });
    }
    expect(files.map((f) => f?.toString('utf8'))).toEqual(['<a/>', undefined, '<b>ü</b>', undefined, '']);
    expect(await t.readSmallFiles([])).toEqual([]);
    const many = Array.from({ length: 230 }, (_, i) => `docs/a.xml`.replace('a', i % 2 ? 'a' : `x${i}`));
    expect((await t.readSmallFiles(many)).filter((f) => f !== undefined)).toHaveLength(115);
  });

  it('reads small files bounded: one over the limit is refused for itself, unread, and the others come back', async () => {
    const t = await kind.fresh();
    await t.write('limit/small.xml', Readable.from([Buffer.from('<small/>')]));
    await t.write('limit/large.xml', Readable.from([Buffer.alloc(64 * 1024, 0x61)]));
    const [large, small, missing] = await t.readSmallFiles(['limit/large.xml', 'limit/small.xml', 'limit/none.xml'], 4096);
    expect(large).toBeInstanceOf(Error);
    expect(large).toMatchObject({ errorId: 'FileTooLarge', exitCode: 12 });
    expect((large as Error).message).toMatch(/over the limit of 4096 bytes/);
    expect(small?.toString()).toBe('<small/>');
    expect(missing).toBeUndefined();
  });

  it('stats present files and folders, and reports absent ones as undefined', async () => {
    const t = await kind.fresh();
    await t.write('s/file.txt', Readable.from([Buffer.from('four')]));
    expect(await t.stat('s/file.txt')).toMatchObject({ name: 'file.txt', isDirectory: false, size: 4 });
    expect(await t.stat('s')).toMatchObject({ name: 's', isDirectory: true });
    expect(await t.stat('s/absent.txt')).toBeUndefined();
    expect(await t.stat('absent/deeper/x')).toBeUndefined();
    expect((await t.stat(''))?.isDirectory).toBe(true);
  });

  it('renames files and folders, never over an existing entry', async () => {
    const t = await kind.fresh();
    await t.write('r/one.txt', Readable.from([Buffer.from('1')]));
    await t.write('r/two.txt', Readable.from([Buffer.from('2')]));
    await t.rename('r/one.txt', 'r/uno.txt');
    expect(await t.stat('r/one.txt')).toBeUndefined();
    expect((await readAll(await t.read('r/uno.txt'))).toString()).toBe('1');

    const clash = await rejected(t.rename('r/uno.txt', 'r/two.txt'));
    expect(clash.category).toBe('ResourceExists');
    expect((await readAll(await t.read('r/two.txt'))).toString()).toBe('2');
    expect((await readAll(await t.read('r/uno.txt'))).toString()).toBe('1');

    await t.mkdir('staging/x y/inner');
    await t.write('staging/x y/inner/f', Readable.from([Buffer.from('f')]));
    await t.rename('staging/x y', 'final/x y');
    expect(await t.stat('staging/x y')).toBeUndefined();
    expect((await readAll(await t.read('final/x y/inner/f'))).toString()).toBe('f');

    await t.mkdir('other');
    expect((await rejected(t.rename('final/x y', 'other'))).category).toBe('ResourceExists');
    expect((await rejected(t.rename('nothing here', 'r/three.txt'))).category).toBe('ObjectNotFound');
  });

  it('deletes files and whole folder trees; deleting a missing path is fine', async () => {
    const t = await kind.fresh();
    await t.write('d/keep.txt', Readable.from([Buffer.from('k')]));
    await t.write('d/gone.txt', Readable.from([Buffer.from('g')]));
    await t.write('d/tree/a/b/c.txt', Readable.from([Buffer.from('c')]));
    await t.mkdir('d/tree/empty');
    await t.delete('d/gone.txt');
    await t.delete('d/tree');
    expect((await t.list('d')).map((e) => e.name)).toEqual(['keep.txt']);
    await t.delete('d/gone.txt');
    await t.delete('never/was/here');
  });

  it('rejects reading a missing file with ObjectNotFound', async () => {
    const t = await kind.fresh();
    for (const p of ['missing.bin', 'missing/folder/file.bin']) {
      const e = await rejected(t.read(p));
      expect(e.category).toBe('ObjectNotFound');
      expect(e.exitCode).toBe(10);
      expect(e.alertType).toBeUndefined();
    }
    await t.mkdir('afolder');
    expect((await rejected(t.read('afolder'))).category).toBe('ObjectNotFound');
  });

  it('reports sane free space', async () => {
    const t = await kind.fresh();
    const space = await t.freeSpace();
    expect(space.available).toBeGreaterThan(0);
    expect(space.total).toBeGreaterThanOrEqual(space.available);
  });

  it('leaves nothing under the final name when the source stream fails', async () => {
    const t = await kind.fresh();
    await t.write('w/previous.bin', Readable.from([Buffer.from('old')]));
    const failing = () =>
      Readable.from(
        (async function* () {
          yield randomBytes(256 * 1024);
          yield randomBytes(256 * 1024);
          throw new Error('source broke');
        })(),
      );
    await expect(t.write('w/new.bin', failing())).rejects.toThrow('source broke');
    await expect(t.write('w/previous.bin', failing())).rejects.toThrow('source broke');
    expect(await t.stat('w/new.bin')).toBeUndefined();
    // An overwrite that fails keeps the previous content.
    expect((await readAll(await t.read('w/previous.bin'))).toString()).toBe('old');
    // Local: the temp file is removed. SMB: the partial file is deleted after the failure.
    expect((await t.list('w')).map((e) => e.name)).toEqual(['previous.bin']);
    expect((await t.list('w')).some((e) => isPartialName(e.name))).toBe(false);
  });

  it('writes in place when the caller commits the folder (atomic: false), and a failed write leaves nothing', async () => {
    const t = await kind.fresh();
    const data = pattern(3 * 1024 * 1024);
    expect(await t.write('c.partial/role.bin', data.stream(), { atomic: false })).toEqual({ bytes: 3 * 1024 * 1024 });
    expect(
      createHash('sha256')
        .update(await readAll(await t.read('c.partial/role.bin')))
        .digest('hex'),
    ).toBe(data.sha256);
    expect((await t.list('c.partial')).map((e) => e.name)).toEqual(['role.bin']);

    const failing = Readable.from(
      (async function* () {
        yield randomBytes(512 * 1024);
        throw new Error('source broke');
      })(),
    );
    await expect(t.write('c.partial/broken.bin', failing, { atomic: false })).rejects.toThrow('source broke');
    expect(await t.stat('c.partial/broken.bin')).toBeUndefined();
    expect((await t.list('c.partial')).map((e) => e.name)).toEqual(['role.bin']);
  });

  // Update-BackupEncryption rewrote a backup's BackupInfo.xml with a write that made the folder
  // again when a prune had removed the backup meanwhile: a "backup" holding nothing else.
  it('with replaceOnly, replaces a file that is there, and makes nothing when it is gone with its folder', async () => {
    const t = await kind.fresh();
    await t.write('b/info.xml', Readable.from([Buffer.from('old')]));
    await t.write('b/info.xml', Readable.from([Buffer.from('new')]), { replaceOnly: true });
    expect(await readAll(await t.read('b/info.xml'))).toEqual(Buffer.from('new'));
    await t.delete('b');
    const refused = await rejected(t.write('b/info.xml', Readable.from([Buffer.from('again')]), { replaceOnly: true }));
    expect(refused).toMatchObject({ errorId: 'TargetObjectNotFound' });
    expect(await t.listTree('')).toEqual([]);
  });

  it('refuses paths that escape the root or are not relative', async () => {
    const t = await kind.fresh();
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'a//b', 'a\\b', './a']) {
      const e = await rejected(t.write(bad, Readable.from([Buffer.from('x')])));
      expect(e.errorId).toBe('InvalidTargetPath');
      expect((await rejected(t.read(bad))).errorId).toBe('InvalidTargetPath');
      expect((await rejected(t.list(bad))).errorId).toBe('InvalidTargetPath');
      expect((await rejected(t.delete(bad))).errorId).toBe('InvalidTargetPath');
    }
  });

  it('reports a missing root folder as SharePath instead of creating it', async () => {
    const t = kind.missingRoot();
    for (const op of [
      () => t.list(''),
      () => t.write('x.txt', Readable.from([Buffer.from('x')])),
      () => t.freeSpace(),
      () => t.mkdir('a'),
    ]) {
      const e = await rejected(op());
      expect(e.alertType).toBe('SharePath');
      expect(e.exitCode).toBe(10);
      expect(e.recommendedAction).toMatch(/path/i);
    }
  });
});
