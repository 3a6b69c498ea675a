import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tarEntries, tarStream } from '../../src/providers/tar-writer.js';
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

  /** A backup of the tree; the files it opened, and its stderr (verbose). */
  async function backUp(): Promise<{ name: string; opened: string[]; stderr: string }> {
    await fs.rm(openLog, { force: true });
    const r = expectOk(
      await d.cli(['Start-InfrastructureBackup', '-Verbose'], { env: { AZSBACKUP_TEST_OPEN_LOG: openLog } }),
      'Start-InfrastructureBackup',
    );
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
});
