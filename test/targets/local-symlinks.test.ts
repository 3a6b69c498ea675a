/**
 * A local folder is often a mounted share (NFS, CIFS with mfsymlinks, a bind mount) that others
 * may write to. The target followed symbolic links below its root: whoever could write to the
 * share could make `MASBackup`, `AzsRepository`, a stamp folder or a pack's fan-out folder a link
 * to a folder of the backup machine, and the target then wrote there, deleted there (rm -r of the
 * folder the link led to), renamed out of it and read its files as share data. Only the root, the
 * operator's own choice, may be a link.
 */
import { renameSync, symlinkSync, watch } from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { PARTIAL_MARKER } from '../../src/targets/paths.js';
import { rejected } from '../support/errors.js';
import { describeWithAndWithoutAddons, useNativeAddons } from '../support/native-switch.js';

let base: string;
beforeAll(async () => {
  base = await fsp.mkdtemp(path.join(os.tmpdir(), 'azs-local-links-'));
});
afterAll(async () => {
  await fsp.rm(base, { recursive: true, force: true });
});

/** Every file and folder below `dir`, with each file's content. */
async function contents(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await fsp.readdir(dir, { recursive: true, withFileTypes: true })) {
    const rel = path.relative(dir, path.join(e.parentPath, e.name));
    out[rel] = e.isFile() ? await fsp.readFile(path.join(dir, rel), 'utf8') : '<dir>';
  }
  return out;
}

const expectLinkRefused = (e: { errorId: string; recommendedAction?: string }) => {
  expect(e.errorId).toBe('ShareSymbolicLink');
  expect(e.recommendedAction).toMatch(/symbolic link/);
};

describeWithAndWithoutAddons('a local target with symbolic links below its root', () => {
  let root: string;
  let outside: string;
  let t: LocalFolderTarget;
  let before: Record<string, string>;

  beforeEach(async () => {
    const here = await fsp.mkdtemp(path.join(base, 'case-'));
    // The root is reached through a link of the operator's: that one is followed.
    await fsp.mkdir(path.join(here, 'real-root'));
    root = path.join(here, 'root');
    await fsp.symlink(path.join(here, 'real-root'), root);
    // A folder of the backup machine, with what the machine keeps there.
    outside = path.join(here, 'machine');
    await fsp.mkdir(path.join(outside, 'victim', 'deep'), { recursive: true });
    await fsp.writeFile(path.join(outside, 'victim', 'deep', 'secret'), 'machine data');
    await fsp.writeFile(path.join(outside, 'shadow'), 'root:$6$hash');
    // What someone who may write to the share put there.
    await fsp.symlink(outside, path.join(root, 'MASBackup'));
    await fsp.symlink(path.join(outside, 'shadow'), path.join(root, 'linked-file'));
    await fsp.mkdir(path.join(root, 'real'));
    await fsp.writeFile(path.join(root, 'real', 'kept'), 'share data');
    t = new LocalFolderTarget(root);
    before = await contents(outside);
  });

  it('writes nothing through a linked folder', async () => {
    expectLinkRefused(await rejected(t.write('MASBackup/20260101T000000Z/new.bin', Readable.from([Buffer.from('x')]))));
    expectLinkRefused(await rejected(t.write('MASBackup/file.bin', Readable.from([Buffer.from('x')]))));
    expectLinkRefused(await rejected(t.mkdir('MASBackup/20260101T000000Z')));
    expect(await contents(outside)).toEqual(before);
  });

  it('deletes nothing through a linked folder', async () => {
    expectLinkRefused(await rejected(t.delete('MASBackup/victim')));
    expectLinkRefused(await rejected(t.delete('MASBackup/victim/deep/secret')));
    expect(await contents(outside)).toEqual(before);
  });

  it('renames nothing out of or into a linked folder', async () => {
    expectLinkRefused(await rejected(t.rename('MASBackup/victim', 'real/taken')));
    expectLinkRefused(await rejected(t.rename('real/kept', 'MASBackup/planted')));
    expect(await contents(outside)).toEqual(before);
    expect(await fsp.readFile(path.join(root, 'real', 'kept'), 'utf8')).toBe('share data');
  });

  it("reads none of the machine's files as share data", async () => {
    expectLinkRefused(await rejected(t.read('MASBackup/victim/deep/secret')));
    expectLinkRefused(await rejected(t.read('linked-file')));
    const [through, linked, real] = await t.readSmallFiles(['MASBackup/shadow', 'linked-file', 'real/kept']);
    expectLinkRefused(through as never);
    expectLinkRefused(linked as never);
    expect(real?.toString()).toBe('share data');
    expectLinkRefused(await rejected(t.stat('MASBackup/victim')));
    expectLinkRefused(await rejected(t.list('MASBackup')));
    expectLinkRefused(await rejected(t.listTree('MASBackup')));
  });

  it('lists a link as an entry of its own, never as what it points at', async () => {
    const listed = await t.list('');
    expect(listed.map((e) => [e.name, e.isDirectory]).sort()).toEqual([
      ['MASBackup', false],
      ['linked-file', false],
      ['real', true],
    ]);
    expect((await t.listTree('')).map((e) => e.path).sort()).toEqual(['MASBackup', 'linked-file', 'real', 'real/kept']);
  });

  it('removes a link itself, never what it points at', async () => {
    await fsp.symlink(path.join(outside, 'victim'), path.join(root, 'real', 'to-victim'));
    await t.delete('real/to-victim');
    await t.delete('linked-file');
    await t.delete('real');
    expect(await fsp.readdir(root)).toEqual(['MASBackup']);
    expect(await contents(outside)).toEqual(before);
  });

  it('works as before where there is no link below the root', async () => {
    await t.write('real/a/b.bin', Readable.from([Buffer.from('new')]));
    await t.rename('real/a', 'real/c');
    expect((await t.readSmallFiles(['real/c/b.bin']))[0]?.toString()).toBe('new');
    expect((await t.stat('real/c/b.bin'))?.size).toBe(3);
    await t.delete('real/c');
    expect(await t.stat('real/c')).toBeUndefined();
  });
});

/**
 * Removing a folder tree by path (fs.rm) resolves every entry's path again: a share writer who
 * replaced a folder being emptied with a link to a folder of this machine, between two of its
 * steps, had the next unlinks land in that folder. The removal now works from folders it holds
 * open (open-beneath.c), so the swap leads nowhere. Without the addon the path-based removal
 * remains, and so does this window.
 */
describe('a folder swapped for a link while it is being removed', () => {
  useNativeAddons(true);

  it('leaves what the link points at untouched, and the share entry gone', async () => {
    const root = await fsp.mkdtemp(path.join(base, 'swap-share-'));
    const victim = await fsp.mkdtemp(path.join(base, 'swap-victim-'));
    // Folders in the folder: a path-based removal walks each one in turn, by its path.
    const names = Array.from({ length: 300 }, (_, i) => `folder-${i}/file`);
    const fill = (dir: string, text: string) =>
      Promise.all(
        names.map(async (n) => {
          await fsp.mkdir(path.dirname(path.join(dir, n)), { recursive: true });
          await fsp.writeFile(path.join(dir, n), text);
        }),
      );
    await fill(path.join(root, 'MASBackup', 'old'), 'share');
    await fill(victim, 'machine');
    // A file beside them goes first, while the folders are still being walked.
    await fsp.writeFile(path.join(root, 'MASBackup', 'old', 'first'), 'share');
    // At the first entry removed, the folder goes aside and a link to the victim takes its name.
    const folder = path.join(root, 'MASBackup', 'old');
    let swapped = false;
    const watcher = watch(folder, () => {
      if (swapped) return;
      try {
        renameSync(folder, `${folder}-aside`);
        symlinkSync(victim, folder);
        swapped = true;
      } catch {
        // Too late: the folder is gone already (the assertion on `swapped` says so).
      }
    });
    try {
      await new LocalFolderTarget(root).delete('MASBackup/old').catch(() => undefined);
    } finally {
      watcher.close();
    }
    expect(swapped).toBe(true);
    for (const n of names) expect(await fsp.readFile(path.join(victim, n), 'utf8')).toBe('machine');
    // What was removed is the share's: the folder (emptied where it was moved) and the link.
    expect(await fsp.readdir(path.join(root, 'MASBackup'))).toEqual(['old-aside']);
    expect(await fsp.readdir(path.join(root, 'MASBackup', 'old-aside'))).toEqual([]);
  });
});

/**
 * refuseLinks checks a path's folders with lstat, and the step after it used the path again: a
 * share writer who swapped a checked folder for a link in between had mkdir make folders, a write
 * put its file, and a rename move entries, on this machine. Each step now works from folders
 * opened without following a link (open-beneath.c), so the swap is refused as the link it is.
 * Without the addon the path-based steps remain, and so do these windows.
 *
 * The swap is made right after the target's lstat of the folder has answered "a folder": the
 * moment a share writer would aim for, made certain here.
 */
describe('a folder swapped for a link after it was checked', () => {
  useNativeAddons(true);

  let root: string;
  let outside: string;
  let t: LocalFolderTarget;
  let before: Record<string, string>;
  let restoreLstat: () => void;

  beforeEach(async () => {
    const here = await fsp.mkdtemp(path.join(base, 'checked-'));
    root = path.join(here, 'share');
    outside = path.join(here, 'machine');
    await fsp.mkdir(path.join(root, 'box'), { recursive: true });
    await fsp.writeFile(path.join(root, 'box', 'old.bin'), 'share data');
    await fsp.writeFile(path.join(root, 'kept'), 'share data');
    await fsp.mkdir(path.join(outside, 'victim'), { recursive: true });
    await fsp.writeFile(path.join(outside, 'victim', 'secret'), 'machine data');
    await fsp.writeFile(path.join(outside, 'old.bin'), 'machine data');
    t = new LocalFolderTarget(root);
    before = await contents(outside);
    restoreLstat = () => {};
  });

  /** Once the target's lstat of `folder` below the root has answered, that folder becomes a link to the machine's folder. */
  function swapAfterCheck(folder: string): { swapped: () => boolean } {
    const at = path.join(root, folder);
    const lstat = fsp.lstat;
    let swapped = false;
    const spy = vi.spyOn(fsp, 'lstat').mockImplementation(async (...args: Parameters<typeof lstat>) => {
      const st = await lstat(...args);
      if (!swapped && args[0] === at && st.isDirectory()) {
        renameSync(at, `${at}-aside`);
        symlinkSync(outside, at);
        swapped = true;
      }
      return st;
    });
    restoreLstat = () => spy.mockRestore();
    return { swapped: () => swapped };
  }

  afterEach(() => restoreLstat());

  it('mkdir makes no folder on the machine', async () => {
    const swap = swapAfterCheck('box');
    expectLinkRefused(await rejected(t.mkdir('box/20260101T000000Z/inner')));
    expect(swap.swapped()).toBe(true);
    expect(await contents(outside)).toEqual(before);
  });

  it('a write puts no file and makes no folder on the machine', async () => {
    const swap = swapAfterCheck('box');
    expectLinkRefused(await rejected(t.write('box/20260101T000000Z/new.bin', Readable.from([Buffer.from('backup')]))));
    expect(swap.swapped()).toBe(true);
    expect(await contents(outside)).toEqual(before);
  });

  it('a write that only replaces puts no file on the machine', async () => {
    const swap = swapAfterCheck('box');
    const written = t.write('box/old.bin', Readable.from([Buffer.from('backup')]), { replaceOnly: true });
    expectLinkRefused(await rejected(written));
    expect(swap.swapped()).toBe(true);
    expect(await contents(outside)).toEqual(before);
  });

  it("a rename moves none of the machine's folders onto the share", async () => {
    const swap = swapAfterCheck('box');
    expectLinkRefused(await rejected(t.rename('box/victim', 'taken')));
    expect(swap.swapped()).toBe(true);
    expect(await contents(outside)).toEqual(before);
    expect(await fsp.readdir(root)).not.toContain('taken');
  });

  it('a rename puts no share file on the machine', async () => {
    const swap = swapAfterCheck('box');
    expectLinkRefused(await rejected(t.rename('kept', 'box/planted')));
    expect(swap.swapped()).toBe(true);
    expect(await contents(outside)).toEqual(before);
    expect(await fsp.readFile(path.join(root, 'kept'), 'utf8')).toBe('share data');
  });

  it('a write whose folder is swapped while the data streams ends in the folder it began in', async () => {
    // The swap waits for the temporary file to exist, then the data follows: the file is open,
    // and only the rename into place is left to resolve the folder again.
    const folder = path.join(root, 'box');
    let swapped = false;
    const created = new Promise<void>((resolve) => {
      const watcher = watch(folder, (_event, name) => {
        if (swapped || !String(name).startsWith(PARTIAL_MARKER)) return;
        watcher.close();
        renameSync(folder, `${folder}-aside`);
        symlinkSync(outside, folder);
        swapped = true;
        resolve();
      });
    });
    const data = Readable.from(
      (async function* () {
        await created;
        yield Buffer.from('backup');
      })(),
    );
    await t.write('box/new.bin', data);
    expect(swapped).toBe(true);
    expect(await contents(outside)).toEqual(before);
    expect(await fsp.readFile(path.join(root, 'box-aside', 'new.bin'), 'utf8')).toBe('backup');
    expect((await fsp.readdir(path.join(root, 'box-aside'))).sort()).toEqual(['new.bin', 'old.bin']);
  });
});
