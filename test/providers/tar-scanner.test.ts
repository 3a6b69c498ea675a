import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TarFormatError, TarScanner, type TarEntry } from '../../src/providers/tar-scanner.js';
import { craftTar, paxBody, type CraftedEntry } from '../support/provider-fixtures.js';

/** What both readers must agree on; times to the second, as ustar headers hold them. */
interface Seen {
  path: string;
  type: string;
  linkpath?: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

function scan(archive: Buffer, pieces: (b: Buffer) => Buffer[] = (b) => [b]): Seen[] {
  const seen: Seen[] = [];
  const scanner = new TarScanner((e: TarEntry) =>
    seen.push({
      path: e.path,
      type: e.type,
      ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {}),
      size: e.size,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      mtime: Math.floor(e.mtime.getTime() / 1000),
    }),
  );
  for (const piece of pieces(archive)) scanner.write(piece);
  scanner.end();
  return seen;
}

/** node-tar's reading of the same archive: the well-kept reference the scanner replaces. */
async function nodeTarEntries(archive: Buffer): Promise<Seen[]> {
  const seen: Seen[] = [];
  const parser = new Parser({
    strict: true,
    onReadEntry: (e: ReadEntry) => {
      seen.push({
        path: e.path,
        type: e.type,
        ...(e.type === 'Link' || e.type === 'SymbolicLink' ? { linkpath: e.linkpath } : {}),
        size: e.size ?? 0,
        mode: e.mode ?? 0,
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        mtime: Math.floor((e.mtime?.getTime() ?? 0) / 1000),
      });
      e.resume();
    },
  });
  await new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
    parser.end(archive);
  });
  return seen;
}

/** GNU tar's own list of the members it would extract. */
function gnuTarNames(archive: Buffer): string[] {
  return execFileSync('tar', ['-t', '--quoting-style=literal', '-f', '-'], { input: archive, encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '');
}

function expectRefused(archive: Buffer, message: RegExp): void {
  let caught: unknown;
  try {
    scan(archive);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TarFormatError);
  expect((caught as Error).message).toMatch(message);
}

let tmp: string;
let tree: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-tarscan-'));
  tree = path.join(tmp, 'tree');
  const deep = path.join(tree, 'a'.repeat(60), 'b'.repeat(60), 'c'.repeat(60));
  await fs.mkdir(deep, { recursive: true });
  await fs.writeFile(path.join(deep, `${'d'.repeat(90)}.pem`), 'deep\n');
  await fs.writeFile(
    path.join(tree, 'a'.repeat(60), 'b'.repeat(60), 'short-name.txt'),
    'a path of 138 bytes fits ustar only with its prefix\n',
  );
  await fs.writeFile(path.join(tree, 'x'.repeat(240)), 'a name of 240 bytes needs a long-name header\n');
  await fs.writeFile(path.join(tree, 'empty'), '');
  await fs.writeFile(path.join(tree, 'exact-block'), Buffer.alloc(1024, 7));
  await fs.writeFile(path.join(tree, 'odd'), Buffer.alloc(1000, 9), { mode: 0o640 });
  await fs.writeFile(path.join(tree, 'Zertifikat-Schlüssel-証明書.key'), 'unicode\n', { mode: 0o600 });
  await fs.symlink('/etc/ssl/certs', path.join(tree, 'ssl'));
  await fs.symlink(`../${'t'.repeat(150)}/target`, path.join(tree, 'long-link'));
  await fs.link(path.join(tree, 'odd'), path.join(tree, 'odd-again'));
  await fs.chown(path.join(tree, 'odd'), 3_000_000, 4_000_000).catch(() => undefined);
  await fs.utimes(path.join(tree, 'empty'), 1_600_000_000, 1_600_000_000);
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

function gnuTar(format: string): Buffer {
  return execFileSync('tar', [`--format=${format}`, '--numeric-owner', '-C', tree, '-cf', '-', '.'], { maxBuffer: 64 << 20 });
}

describe('TarScanner reads what GNU tar writes', () => {
  for (const format of ['posix', 'gnu']) {
    it(`agrees with node-tar and GNU tar on a ${format} archive`, async () => {
      const archive = gnuTar(format);
      const seen = scan(archive);
      expect(seen).toEqual(await nodeTarEntries(archive));
      expect(seen.map((e) => e.path)).toEqual(gnuTarNames(archive));
      const byName = new Map(seen.map((e) => [path.posix.basename(e.path.replace(/\/$/, '')), e]));
      expect(byName.get('x'.repeat(240))?.type).toBe('File');
      expect(byName.get('long-link')).toMatchObject({ type: 'SymbolicLink', linkpath: `../${'t'.repeat(150)}/target` });
      // Whichever of the two names tar met second is the hard link to the first.
      const pair = [byName.get('odd')!, byName.get('odd-again')!].sort((a, b) => seen.indexOf(a) - seen.indexOf(b));
      expect(pair[0]).toMatchObject({ type: 'File', size: 1000, mode: 0o640 });
      expect(pair[1]).toMatchObject({ type: 'Link', linkpath: pair[0]!.path, size: 0 });
      expect(byName.get('empty')).toMatchObject({ size: 0, mtime: 1_600_000_000 });
      if (process.getuid?.() === 0) expect(byName.get('odd')).toMatchObject({ uid: 3_000_000, gid: 4_000_000 });
    });
  }

  it('joins the ustar prefix to the name', async () => {
    const archive = execFileSync('tar', ['--format=ustar', '-C', tree, '-cf', '-', `./${'a'.repeat(60)}/${'b'.repeat(60)}/short-name.txt`]);
    const seen = scan(archive);
    expect(seen.map((e) => e.path)).toEqual(gnuTarNames(archive));
    expect(seen.some((e) => e.path.length > 100)).toBe(true);
  });

  it('finds the same entries however the stream is cut', async () => {
    const archive = gnuTar('posix');
    const whole = scan(archive);
    const bytewise = scan(archive.subarray(0, 64 * 1024), (b) => [...b].map((x) => Buffer.from([x])));
    expect(bytewise).toEqual(whole.filter((e) => bytewise.some((b) => b.path === e.path)));
    let seed = 7;
    const random = (b: Buffer): Buffer[] => {
      const out: Buffer[] = [];
      for (let at = 0; at < b.length; ) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const n = 1 + (seed % 1500);
        out.push(b.subarray(at, at + n));
        at += n;
      }
      return out;
    };
    for (let round = 0; round < 5; round++) expect(scan(archive, random)).toEqual(whole);
  });
});

describe('TarScanner follows the headers GNU tar follows', () => {
  it('takes the size from a pax header, as GNU tar does for files over 8 GiB', () => {
    const data = Buffer.alloc(1536, 0x41);
    const archive = craftTar([
      { name: 'PaxHeader/big', type: 'file', flag: 'x', body: paxBody({ size: String(data.length), path: 'big-file' }) },
      { name: 'big', type: 'file', body: data, size: 0 },
      { name: 'after', type: 'file', body: 'x' },
    ]);
    const seen = scan(archive);
    expect(seen.map((e) => [e.path, e.size])).toEqual([
      ['big-file', 1536],
      ['after', 1],
    ]);
    expect(seen.map((e) => e.path)).toEqual(gnuTarNames(archive));
  });

  it('stops at the first zero block, and so does GNU tar', () => {
    const one = craftTar([{ name: 'first', type: 'file', body: 'a' }]).subarray(0, 1024 + 512);
    const archive = Buffer.concat([one, craftTar([{ name: 'hidden-after-the-end', type: 'file', body: 'b' }])]);
    expect(scan(archive).map((e) => e.path)).toEqual(['first']);
    expect(gnuTarNames(archive)).toEqual(['first']);
  });

  it('accepts an archive that ends without its zero blocks', () => {
    const archive = craftTar([{ name: 'only', type: 'file', body: 'a' }]);
    expect(scan(archive.subarray(0, 1024)).map((e) => e.path)).toEqual(['only']);
  });
});

describe('TarScanner refuses what it cannot vouch for', () => {
  const file: CraftedEntry = { name: 'f', type: 'file', body: 'hello' };

  it('a header whose checksum does not match', () => {
    const archive = craftTar([file]);
    archive[10] = 0x5a;
    expectRefused(archive, /checksum/);
  });

  it('data that is not a tar archive', () => {
    expectRefused(Buffer.alloc(4096, 0x41), /checksum|octal/);
  });

  it('an archive cut inside a header, inside data, or after an extended header', () => {
    const archive = craftTar([file, { name: 'g', type: 'file', body: Buffer.alloc(2000) }]);
    expectRefused(archive.subarray(0, 700), /truncated/);
    expectRefused(archive.subarray(0, 1024 + 512 + 100), /truncated/);
    const pax = craftTar([{ name: 'PaxHeader/f', type: 'file', flag: 'x', body: paxBody({ path: 'f' }) }]);
    expectRefused(pax.subarray(0, 1024), /truncated/);
    expectRefused(pax, /ends after an extended header/);
  });

  it('a pax global header', () => {
    expectRefused(craftTar([{ name: 'g', type: 'file', flag: 'g', body: paxBody({ path: 'x' }) }, file]), /global/);
  });

  it('two extended headers of one kind for one entry', () => {
    const x: CraftedEntry = { name: 'PaxHeader/f', type: 'file', flag: 'x', body: paxBody({ path: 'f' }) };
    expectRefused(craftTar([x, x, file]), /two extended headers/);
    const l: CraftedEntry = { name: '././@LongLink', type: 'file', flag: 'L', body: 'long\0' };
    expectRefused(craftTar([l, l, file]), /two extended headers/);
  });

  it('data on an entry type that has none', () => {
    expectRefused(craftTar([{ name: 's', type: 'symlink', link: 't', size: 512 }]), /carries 512 bytes/);
    expectRefused(craftTar([{ name: 'd/', type: 'dir', size: 1 }]), /carries 1 bytes/);
  });

  it('an extended header above 1 MiB', () => {
    expectRefused(craftTar([{ name: 'PaxHeader/f', type: 'file', flag: 'x', body: '', size: 2 * 1024 * 1024 }, file]), /larger than/);
  });

  it('malformed pax records and numbers', () => {
    expectRefused(craftTar([{ name: 'PaxHeader/f', type: 'file', flag: 'x', body: '99 path=f\n' }, file]), /malformed record/);
    expectRefused(craftTar([{ name: 'PaxHeader/f', type: 'file', flag: 'x', body: '0xb path=f\n' }, file]), /malformed record/);
    expectRefused(
      craftTar([{ name: 'PaxHeader/f', type: 'file', flag: 'x', body: paxBody({ size: '12abc' }) }, file]),
      /not a whole number/,
    );
    const archive = craftTar([file]);
    archive.write('9999', 124, 'latin1');
    let sum = 0;
    archive.fill(' ', 148, 156);
    for (let i = 0; i < 512; i++) sum += archive[i]!;
    archive.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expectRefused(archive, /not an octal number/);
  });

  it('what its callback throws, before the entry is passed on', () => {
    const scanner = new TarScanner((e) => {
      if (e.path === 'bad') throw new Error('refused bad');
    });
    expect(() => scanner.write(craftTar([file, { name: 'bad', type: 'file', body: 'x' }]))).toThrow('refused bad');
  });

  it('marks sparse files, so that the guard can refuse them', () => {
    const archive = craftTar([
      { name: 'PaxHeader/s', type: 'file', flag: 'x', body: paxBody({ 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0' }) },
      { name: 's', type: 'file', body: 'x' },
    ]);
    expect(scan(archive)[0]?.type).toBe('SparseFile');
  });
});
