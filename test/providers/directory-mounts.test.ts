import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProvider } from '../../src/providers/index.js';
import type { Provider } from '../../src/providers/provider.js';
import { canMount, mountsAtOrUnder, mountTmpfs, unmount } from '../support/mounts.js';
import { exportAll, snapshotTree } from '../support/provider-fixtures.js';

/**
 * A directory role is restored by putting a staged folder in the place of the old one (a rename),
 * which a mount point cannot take part in. Before, a folder holding a mounted file system was
 * swapped all the same: the mounted file system went aside with the old folder, under a hidden
 * staging name, its removal failed (EBUSY), and the restore said the folder "was left as it was"
 * although the new folder was in place (and the file system's next mount hid it again); the
 * leftover failed every later restore of the role. A folder that is itself a mount point had the
 * whole role extracted beside it, on the file system below, before the swap failed with a bare
 * EBUSY. A folder holding a mount point is refused now before anything is written; a folder that
 * is one has its contents swapped in place (src/providers/swap.ts).
 */

/** The tree to the millisecond: a restore sets folders' times to the millisecond. */
const toTheMs = (tree: Awaited<ReturnType<typeof snapshotTree>>) =>
  tree.map((e) => ({ ...e, mtimeMs: e.mtimeMs === undefined ? undefined : Math.floor(e.mtimeMs) }));

const mount = (at: string) => mountTmpfs(at);
const mountsBelow = async (root: string) => (await mountsAtOrUnder(root)).filter((p) => p !== root);

describe.skipIf(!canMount)('directory restore and mount points', () => {
  let tmp: string;
  let app: string;
  let provider: Provider;

  beforeEach(async () => {
    tmp = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'azs-mounts-')));
    app = path.join(tmp, 'app');
    await fs.mkdir(app);
    provider = await createProvider({ name: 'App', provider: 'directory', restoreOrder: 1, path: app });
  });
  afterEach(async () => {
    for (const m of (await mountsBelow(tmp)).reverse()) unmount(m);
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('a folder holding a mounted file system is refused, and the folder and the file system stay as they were', async () => {
    const volume = path.join(app, 'data');
    await fs.mkdir(volume);
    await fs.writeFile(path.join(app, 'app.conf'), 'port=1\n');
    expect(mount(volume)).toBe(true);
    await fs.writeFile(path.join(volume, 'records'), 'as backed up\n');
    const bytes = await exportAll(provider);
    await fs.writeFile(path.join(volume, 'records'), 'written since the backup\n');
    await fs.writeFile(path.join(app, 'app.conf'), 'port=2\n');
    const before = await snapshotTree(app);

    for (let attempt = 0; attempt < 2; attempt++) {
      const err = await provider.import(Readable.from([bytes])).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ errorId: 'DirectoryDestinationHoldsMount', exitCode: 1, targetObject: volume });
      expect((err as Error).message).toContain(`'${volume}'`);
      expect(await mountsBelow(tmp)).toEqual([volume]);
      expect(await snapshotTree(app)).toEqual(before);
      expect(await fs.readdir(tmp)).toEqual(['app']);
    }
  });

  it('a folder that is a mount point is restored in place, with nothing staged beside it on the file system below', async () => {
    expect(mount(app)).toBe(true);
    await fs.writeFile(path.join(app, 'records'), 'as backed up\n');
    await fs.mkdir(path.join(app, 'keys'), { mode: 0o700 });
    await fs.writeFile(path.join(app, 'keys', 'ca.key'), 'secret\n', { mode: 0o600 });
    const bytes = await exportAll(provider);
    const backedUp = toTheMs(await snapshotTree(app));
    await fs.writeFile(path.join(app, 'records'), 'written since the backup\n');
    await fs.writeFile(path.join(app, 'only-since'), 'new\n');
    await fs.rm(path.join(app, 'keys'), { recursive: true });
    // Watches the folder a rename-based staging would go into: nothing may appear there, not even for a while.
    const seen = new Set<string>();
    const ac = new AbortController();
    const watching = (async () => {
      for await (const event of fs.watch(tmp, { signal: ac.signal })) if (event.filename) seen.add(event.filename);
    })().catch(() => undefined);
    await provider.import(Readable.from([bytes]));
    await new Promise((resolve) => setTimeout(resolve, 100));
    ac.abort();
    await watching;
    expect(toTheMs(await snapshotTree(app))).toEqual(backedUp);
    expect(await mountsBelow(tmp)).toEqual([app]);
    expect(await fs.readdir(tmp)).toEqual(['app']);
    expect([...seen]).toEqual([]);
  });

  it('a file whose name looks like one of our swap names is restored too, not left in the staging', async () => {
    expect(mount(app)).toBe(true);
    const odd = '.azs-old-AbCdEfGhIjKlMnOp';
    await fs.writeFile(path.join(app, odd), 'an operator file of that name\n');
    await fs.writeFile(path.join(app, 'records'), 'as backed up\n');
    const bytes = await exportAll(provider);
    // Changed since the backup: the old one goes aside like any other file, the backed-up one comes in.
    await fs.writeFile(path.join(app, odd), 'changed since\n');
    await provider.import(Readable.from([bytes]));
    expect(await fs.readFile(path.join(app, odd), 'utf8')).toBe('an operator file of that name\n');
    expect((await fs.readdir(app)).sort()).toEqual([odd, 'records']);
    // And gone since the backup: it comes back.
    await fs.rm(path.join(app, odd));
    await provider.import(Readable.from([bytes]));
    expect((await fs.readdir(app)).sort()).toEqual([odd, 'records']);
  });

  it('a mount point holding another mount point is refused, naming the inner one', async () => {
    expect(mount(app)).toBe(true);
    const volume = path.join(app, 'data');
    await fs.mkdir(volume);
    const bytes = await exportAll(provider);
    expect(mount(volume)).toBe(true);
    const before = await snapshotTree(app);
    const err = await provider.import(Readable.from([bytes])).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ errorId: 'DirectoryDestinationHoldsMount', exitCode: 1, targetObject: volume });
    expect(await snapshotTree(app)).toEqual(before);
    expect(await fs.readdir(app)).toEqual(['data']);
  });
});
