import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';

/**
 * A file the files cache gave a backup unread goes on into the next cache: it was settled when it
 * went in, and its ctime has not moved since. Before, such a file was weighed again against the
 * kernel's writeback delay (40 s), so every file younger than that, taken from the cache by one
 * backup, was read again by the next: on the retention bench, which backs up a freshly made corpus,
 * most of the corpus every other round.
 */

const FILES = 20;
let d: Drill;
let tree: string;
/** As long a writeback delay as a slow disk may have: only the walk's own writeback settles a file. */
const LONG_WRITEBACK = { AZSBACKUP_TEST_DIRTY_PAGES_MS: '600000' };

async function counts(): Promise<string> {
  const r = expectOk(await d.cli(['Start-InfrastructureBackup', '-Verbose'], { env: LONG_WRITEBACK }), 'Start-InfrastructureBackup');
  return /(\d+ files unchanged since the last backup \(files cache, not read\), \d+ files read)/.exec(r.stderr)?.[1] ?? r.stderr;
}

/** The walk writes pages back through the folder-stat addon (npm ci compiles it). */
const addon = existsSync(new URL('../../src/native/build/Release/folder_stat.node', import.meta.url));

describe.skipIf(!addon)('files cache across backups', () => {
  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    tree = path.join(d.root, 'tree');
    await fs.mkdir(tree);
    for (let i = 0; i < FILES; i++) await fs.writeFile(path.join(tree, `f${i}`), `file ${i}\n`);
    await d.register('Tree', ['-Provider', 'directory', '-Path', tree]);
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('keeps a file it took from the cache for the backup after, though the file is younger than the writeback delay', async () => {
    expect(await counts()).toBe(`0 files unchanged since the last backup (files cache, not read), ${FILES} files read`);
    expect(await counts()).toBe(`${FILES} files unchanged since the last backup (files cache, not read), 0 files read`);
    expect(await counts()).toBe(`${FILES} files unchanged since the last backup (files cache, not read), 0 files read`);
  });
});
