import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, killWhen, makeDrill, spawnCli, type Drill } from '../support/cli.js';
import { aclOf, aclTools } from '../support/acl.js';
import { canMount, mountsAtOrUnder, mountTmpfs, unmount } from '../support/mounts.js';
import { snapshotTree } from '../support/provider-fixtures.js';

/**
 * A directory role whose folder is the root of its own file system (`/var/lib/ca` on a volume of
 * its own) is restored in place: the root of a mount cannot be renamed, so its contents are swapped
 * entry by entry, journalled inside it (src/providers/swap.ts). Before, such a restore was refused
 * and the operator had to restore elsewhere and move the files by hand.
 *
 * kill -9 at any step leaves a journal inside the folder that the next restore or backup follows:
 * the old entries come back if they were on their way aside, the rest of the new ones come in if
 * they were on their way in. The mount stays mounted throughout.
 */

const PAUSE_MS = 300;

const mount = (at: string) => mountTmpfs(at, 'size=64m,mode=0750');
const isMounted = async (at: string) => (await mountsAtOrUnder(at)).includes(at);

const aclShown = (p: string) => (aclTools ? aclOf(p) : '');

let d: Drill;
/** The mount point's ACL as backed up. */
let rootAcl: string;
let backupName: string;
/** The folder as the backup holds it, root attributes included. */
let newPicture: string;
/** The folder as it is before each restore: changed since the backup. */
let oldTemplate: string;

/** To the millisecond: a restore sets folders' times to the millisecond (a limit of every directory role's restore). */
const picture = async (): Promise<string> =>
  JSON.stringify(
    (await snapshotTree(d.files)).map((e) => ({ ...e, mtimeMs: e.mtimeMs === undefined ? undefined : Math.floor(e.mtimeMs) })),
    null,
    1,
  );
/** Our names inside the folder (journal, staging, old entries) and beside it. */
async function ours(): Promise<string[]> {
  const inside = (await fs.readdir(d.files)).filter((n) => n.startsWith('.azs-'));
  const beside = (await fs.readdir(path.dirname(d.files))).filter((n) => n.startsWith('.files.'));
  return [...inside, ...beside].sort();
}
async function journal(): Promise<any> {
  const name = (await fs.readdir(d.files)).find((n) => /^\.azs-swap-[^.]+$/.test(n));
  return name === undefined ? undefined : JSON.parse(await fs.readFile(path.join(d.files, name), 'utf8'));
}

/** The mount's contents and its root's mode and times as in the template. */
async function resetToOld(): Promise<string> {
  if (aclTools) execFileSync('setfacl', ['-b', d.files]);
  for (const name of await fs.readdir(d.files)) await fs.rm(path.join(d.files, name), { recursive: true, force: true });
  await fs.cp(oldTemplate, d.files, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  const st = await fs.stat(oldTemplate);
  await fs.chmod(d.files, st.mode & 0o7777);
  await fs.utimes(d.files, st.atime, st.mtime);
  return picture();
}

function restoreArgs(): { args: string[]; stdin: string } {
  const { args, stdin } = d.decryptArgs();
  return { args: ['Restore-AzsBackup', '-Name', backupName, '-RoleName', 'Files', ...args, '-Confirm:$false'], stdin };
}

describe.skipIf(!canMount)('restoring a directory role whose folder is a mount point', () => {
  beforeAll(async () => {
    d = await makeDrill({ bigFileBytes: 4 * 1024 * 1024 });
    // The role's folder becomes the root of a file system of its own, holding the same files.
    const made = path.join(d.root, 'files-made');
    await fs.rename(d.files, made);
    await fs.mkdir(d.files);
    expect(mount(d.files)).toBe(true);
    await fs.cp(made, d.files, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    await fs.chmod(d.files, 0o705);
    // The root's own ACL (a service account let in): the mount point takes the staged root's.
    if (aclTools) execFileSync('setfacl', ['-m', 'u:nobody:rx', d.files]);
    rootAcl = aclShown(d.files);
    await fs.utimes(d.files, new Date('2026-03-01T10:00:00Z'), new Date('2026-03-01T10:00:00Z'));
    backupName = (await d.backup(['-RoleName', 'Files'])).Name as string;
    newPicture = await picture();

    await fs.writeFile(path.join(d.files, 'only-in-old.txt'), 'written after the backup');
    await fs.writeFile(path.join(d.files, 'cloud.json'), JSON.stringify({ region: 'changed after the backup' }));
    await fs.rm(path.join(d.files, 'run.sh'));
    if (aclTools) execFileSync('setfacl', ['-b', d.files]);
    await fs.chmod(d.files, 0o750);
    await fs.utimes(d.files, new Date('2026-11-01T10:00:00Z'), new Date('2026-11-01T10:00:00Z'));
    oldTemplate = path.join(d.root, 'files-old');
    await fs.cp(d.files, oldTemplate, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    await fs.chmod(oldTemplate, 0o750);
    await fs.utimes(oldTemplate, new Date('2026-11-01T10:00:00Z'), new Date('2026-11-01T10:00:00Z'));
  }, 120_000);
  afterAll(async () => {
    if (d) unmount(d.files);
    await d?.cleanup();
  });

  it.each([
    { way: 'with renameat2', env: {} as Record<string, string> },
    { way: 'without the addons (AZSBACKUP_NATIVE=off)', env: { AZSBACKUP_NATIVE: 'off' } },
  ])(
    'is restored in place $way: the same files, modes and times as backed up, the root included, and the mount stays',
    async ({ env }) => {
      const oldPicture = await resetToOld();
      expect(oldPicture).not.toBe(newPicture);
      const { args, stdin } = restoreArgs();
      if (aclTools) expect(aclShown(d.files)).not.toBe(rootAcl);
      expectOk(await d.cli(args, { stdin, env }), 'Restore-AzsBackup onto a mount point');
      expect(await picture()).toBe(newPicture);
      // Without the addons the mount point keeps its own ACL (Node cannot set one); what it holds gets theirs from GNU tar.
      if (!env.AZSBACKUP_NATIVE) expect(aclShown(d.files)).toBe(rootAcl);
      expect(await isMounted(d.files)).toBe(true);
      expect(await ours()).toEqual([]);
    },
    90_000,
  );

  it('a restore that does not fit on the volume fails and leaves the folder as it was, times included', async () => {
    await resetToOld();
    // The old contents and the staged new ones must both fit until the swap: here they do not.
    const { bavail, bsize } = await fs.statfs(d.files);
    await fs.writeFile(path.join(d.files, 'filler.bin'), Buffer.alloc(Number(bavail * bsize) - 2 * 1024 * 1024, 1));
    await fs.utimes(d.files, new Date('2026-11-01T10:00:00Z'), new Date('2026-11-01T10:00:00Z'));
    const full = await picture();
    const { args, stdin } = restoreArgs();
    const r = await d.cli(args, { stdin });
    // Refused by the check of room before anything is staged (restore-room.ts).
    expect(r.code, r.stderr).toBe(14);
    expect(r.stderr).toMatch(/DestinationFull/);
    expect(await picture()).toBe(full);
    expect(await ours()).toEqual([]);
    await fs.rm(path.join(d.files, 'filler.bin'));
  }, 90_000);

  const steps: { name: string; seen: () => Promise<boolean>; next: 'restore' | 'backup'; expectAfterNext?: 'old' | 'new' }[] = [
    {
      name: 'while the archive is extracted into the staging folder',
      seen: async () => (await journal())?.phase === 'staging',
      next: 'backup',
      expectAfterNext: 'old',
    },
    {
      name: 'while the old entries go aside',
      seen: async () => {
        const j = await journal();
        return j?.phase === 'swapping' && (await fs.readdir(path.join(d.files, j.aside)).catch(() => [])).length > 0;
      },
      next: 'backup',
      expectAfterNext: 'old',
    },
    {
      name: 'while the new entries come in',
      seen: async () => {
        const j = await journal();
        return j?.phase === 'moving-in' && (await fs.readdir(d.files)).includes('cloud.json');
      },
      next: 'backup',
      expectAfterNext: 'new',
    },
    {
      name: 'while the new entries come in, and the next command is the restore again',
      seen: async () => {
        const j = await journal();
        return j?.phase === 'moving-in' && (await fs.readdir(d.files)).includes('cloud.json');
      },
      next: 'restore',
    },
  ];

  it.each(steps)(
    'killed $name: the journal inside the folder lets the next command put it right',
    async (step) => {
      const oldPicture = await resetToOld();
      const { args, stdin } = restoreArgs();
      const child = spawnCli(d.home, args, { stdin, env: { AZSBACKUP_TEST_SWAP_PAUSE_MS: String(PAUSE_MS) }, timeoutMs: 60_000 });
      await killWhen(child, step.name, step.seen);
      expect(await isMounted(d.files)).toBe(true);
      // Mid-swap the folder holds part of each, and the journal that says which way to go.
      expect(await journal()).toBeDefined();

      if (step.next === 'backup') {
        expectOk(await d.cli(['Start-InfrastructureBackup', '-RoleName', 'Files']), 'the next Start-InfrastructureBackup');
        expect(await picture()).toBe(step.expectAfterNext === 'old' ? oldPicture : newPicture);
        expect(await ours()).toEqual([]);
      }
      expectOk(await d.cli(args, { stdin }), 'the next Restore-AzsBackup');
      expect(await picture()).toBe(newPicture);
      expect(await ours()).toEqual([]);
      expect(await isMounted(d.files)).toBe(true);
    },
    90_000,
  );
});
