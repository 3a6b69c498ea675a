import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveRouter, type RouteStep } from '../../src/providers/archive-router.js';
import { TarScanner } from '../../src/providers/tar-scanner.js';

/**
 * The router takes the large files out of a tar stream and leaves GNU tar an archive it reads as
 * the same one without them: no pax header of a taken entry left behind to rename the next one,
 * nothing lost or repeated at a chunk's edge, and every chunk handed back to its pool exactly once,
 * only after all of its pieces were done with.
 */

let tmp: string;
let archive: Buffer;
const contents = new Map<string, Buffer>();

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-router-'));
  const src = path.join(tmp, 'src');
  await fs.mkdir(path.join(src, 'deep', 'er'), { recursive: true });
  const files: [string, number][] = [
    ['a-small.txt', 300],
    ['big-1.bin', 2 * 1024 * 1024 + 5],
    [`deep/er/${'long-name-'.repeat(12)}.bin`, 1024 * 1024],
    ['deep/small.json', 512],
    ['z-empty', 0],
  ];
  for (const [rel, size] of files) {
    contents.set(rel, randomBytes(size));
    await fs.writeFile(path.join(src, rel), contents.get(rel)!);
  }
  // Nanosecond times and the long name give every entry a pax header to hold back.
  execFileSync('touch', ['-d', '@1700000000.5', path.join(src, 'big-1.bin')]);
  archive = execFileSync('tar', ['--format=posix', '--sort=name', '-C', src, '-cf', '-', '.'], { maxBuffer: 64 * 1024 * 1024 });
});
afterAll(async () => fs.rm(tmp, { recursive: true, force: true }));

/** Routes `archive` cut into `sizes` (cycled); GNU tar's stream, the taken files, and the recycling seen. */
function route(sizes: number[]) {
  const recycled: Buffer[] = [];
  const router = new ArchiveRouter(
    (e) => e.size >= 1024 * 1024,
    (chunk) => recycled.push(chunk),
  );
  const scanner = new TarScanner(
    (e) => router.entry(e),
    (piece, part) => router.piece(piece, part),
  );
  const toTar: Buffer[] = [];
  const taken = new Map<string, Buffer[]>();
  let open: string | undefined;
  const chunks: Buffer[] = [];
  const carry = (steps: RouteStep[]) => {
    for (const step of steps) {
      if (step.kind === 'tar') toTar.push(Buffer.from(step.piece));
      else if (step.kind === 'open') taken.set((open = step.entry.path.replace(/^\.\//, '')), []);
      else if (step.kind === 'data') taken.get(open!)!.push(Buffer.from(step.piece));
      else open = undefined;
    }
    return steps;
  };
  const later: RouteStep[] = [];
  for (let at = 0, i = 0; at < archive.length; i++) {
    // Copies, so a chunk handed back is told apart from the archive's memory.
    const chunk = Buffer.from(archive.subarray(at, at + sizes[i % sizes.length]!));
    at += chunk.length;
    chunks.push(chunk);
    router.begin(chunk);
    scanner.write(chunk);
    later.push(...carry(router.take()));
  }
  scanner.end();
  later.push(...carry(router.finish()));
  const beforeDone = recycled.length;
  for (const step of later) if (step.kind === 'tar' || step.kind === 'data') router.done(step.piece);
  return { toTar: Buffer.concat(toTar), taken, chunks, recycled, beforeDone };
}

describe('routing a tar stream between GNU tar and the files written directly', () => {
  for (const [label, sizes] of [
    ['whole', [1 << 30]],
    ['in chunks of 1 to 513 bytes', [1, 2, 509, 3, 513, 1]],
    ['in chunks of odd sizes', [1, 511, 513, 4096, 7, 100_000, 3]],
  ] as [string, number[]][]) {
    it(`leaves GNU tar the same archive without the large files (${label})`, async () => {
      const { toTar, taken, chunks, recycled, beforeDone } = route(sizes);
      expect([...taken.keys()].sort()).toEqual(['big-1.bin', `deep/er/${'long-name-'.repeat(12)}.bin`]);
      for (const [rel, pieces] of taken) expect(Buffer.concat(pieces).equals(contents.get(rel)!), rel).toBe(true);
      const listed = execFileSync('tar', ['-tvf', '-'], { input: toTar, encoding: 'utf8' });
      expect(listed).not.toContain('big-1');
      expect(listed).not.toContain('long-name');
      const out = path.join(tmp, `out-${label.replace(/\W+/g, '-')}`);
      await fs.mkdir(out);
      execFileSync('tar', ['-C', out, '-xf', '-'], { input: toTar });
      for (const rel of ['a-small.txt', 'deep/small.json', 'z-empty'])
        expect((await fs.readFile(path.join(out, rel))).equals(contents.get(rel)!), rel).toBe(true);
      expect((await fs.readdir(path.join(out, 'deep', 'er'))).length).toBe(0);
      // Nothing of the removed entries reaches GNU tar: the archive shrank by their headers, data and padding.
      expect(archive.length - toTar.length).toBeGreaterThanOrEqual(contents.get('big-1.bin')!.length + 1024 * 1024 + 2 * 512);
      // Chunks still holding undone pieces stayed out of the pool; at the end each went back once.
      expect(beforeDone).toBeLessThan(chunks.length);
      expect(recycled.length).toBe(chunks.length);
      expect(new Set(recycled).size).toBe(chunks.length);
      const handedOut = new Set(chunks);
      expect(recycled.every((c) => handedOut.has(c))).toBe(true);
    });
  }
});
