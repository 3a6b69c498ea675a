import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Database } from '../support/provider-fixtures.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, list, makeDrill, warningsIn, type Drill } from '../support/cli.js';
import { canMount, mountTmpfs, unmount } from '../support/mounts.js';

/**
 * A restore checks the room on each file system its roles are staged on before it stages any: a
 * role larger than the room left would fill the disk to the last byte (and every other service on
 * it meets ENOSPC) before it failed. Watched here on small tmpfs mounts, whose used space must not
 * rise at all when the restore is refused; and a restore that fits must not be refused.
 */

const MiB = 1024 * 1024;

let d: Drill;
let backupName: string;
/** The disk the roles A, B (folders) and Db (a database in a folder of its own) lie on. */
let disk: string;
/** A folder that is a file system of its own (role Vol): its staging lies inside it. */
let vol: string;
const backedUp: Record<string, string> = {};

const usedOf = async (mount: string): Promise<number> => {
  const s = await fs.statfs(mount);
  return (s.blocks - s.bfree) * s.bsize;
};

/** Runs `work` while sampling the mount's used space every millisecond; the most it was. */
async function mostUsedDuring<T>(mount: string, work: () => Promise<T>): Promise<{ result: T; most: number }> {
  let most = await usedOf(mount);
  let watching = true;
  const watch = (async () => {
    while (watching) {
      most = Math.max(most, await usedOf(mount));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  try {
    return { result: await work(), most };
  } finally {
    watching = false;
    await watch;
    most = Math.max(most, await usedOf(mount));
  }
}

function restore(extra: string[] = []): Promise<import('../support/cli.js').CliResult> {
  const { args, stdin } = d.decryptArgs();
  return d.cli(['Restore-AzsBackup', '-Name', backupName, ...extra, ...args, '-Confirm:$false'], { stdin });
}

/** Our names (journals, staging) anywhere on the disks. */
async function leftovers(): Promise<string[]> {
  const names = (await fs.readdir(disk, { recursive: true })).concat(await fs.readdir(vol));
  return names.filter((n) => n.includes('.azs-'));
}

describe.skipIf(!canMount)('room for a restore, checked before anything is staged', () => {
  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    disk = path.join(d.root, 'disk');
    vol = path.join(d.root, 'vol');
    for (const [role, at] of [
      ['A', path.join(disk, 'a')],
      ['B', path.join(disk, 'b')],
    ] as const) {
      await fs.mkdir(at, { recursive: true });
      await fs.writeFile(path.join(at, 'data.bin'), randomBytes(3 * MiB));
      await d.register(role, ['-Provider', 'directory', '-Path', at, '-RestoreOrder', role === 'A' ? '1' : '2']);
    }
    // A second name of A's file: its bytes are in the backup once, and take room once.
    await fs.link(path.join(disk, 'a', 'data.bin'), path.join(disk, 'a', 'same-data.bin'));
    await fs.mkdir(path.join(disk, 'identity'));
    const db = new Database(path.join(disk, 'identity', 'id.sqlite'));
    db.exec('CREATE TABLE t (b BLOB)');
    for (let i = 0; i < 8; i++) db.prepare('INSERT INTO t VALUES (?)').run(randomBytes(64 * 1024));
    db.close();
    await d.register('Db', ['-Provider', 'sqlite', '-DatabasePath', path.join(disk, 'identity', 'id.sqlite'), '-RestoreOrder', '3']);
    await fs.mkdir(vol);
    await fs.writeFile(path.join(vol, 'volume.bin'), randomBytes(3 * MiB));
    await d.register('Vol', ['-Provider', 'directory', '-Path', vol, '-RestoreOrder', '4']);
    backupName = (await d.backup()).Name;
    for (const [role, at] of [
      ['A', path.join(disk, 'a')],
      ['B', path.join(disk, 'b')],
      ['Vol', vol],
    ])
      backedUp[role] = fingerprint(at);

    // The machine as it is on the worst day: small disks; A as it is today, B and the database gone.
    await fs.rm(disk, { recursive: true });
    await fs.rm(vol, { recursive: true });
    await fs.mkdir(disk);
    await fs.mkdir(vol);
    expect(mountTmpfs(disk, 'size=7m')).toBe(true);
    expect(mountTmpfs(vol, 'size=5m')).toBe(true);
    await fs.mkdir(path.join(disk, 'a'));
    await fs.writeFile(path.join(disk, 'a', 'today.txt'), 'A as it is today\n');
    await fs.writeFile(path.join(vol, 'today.bin'), randomBytes(2 * MiB));
  });
  afterAll(async () => {
    unmount(disk);
    unmount(vol);
    await d?.cleanup();
  });

  it('refuses roles that each fit but together do not, naming the file system, before anything is written', async () => {
    const before = fingerprint(disk);
    const used = await usedOf(disk);
    const { result: r, most } = await mostUsedDuring(disk, () => restore());
    expect(r.code, r.stderr).toBe(14);
    const error = r.errors.find((e) => e.ErrorId === 'DestinationFull');
    expect(error, r.stderr).toBeDefined();
    // The disk holding A, B and the database is named, with what they need and what it has.
    expect(error!.Message).toContain(disk);
    expect(r.stderr).toMatch(/roles A .*B .*Db /);
    expect(r.stderr).toContain('Nothing was changed');
    expect(most).toBe(used);
    expect(fingerprint(disk)).toBe(before);
    expect(list(r.json).map((x) => [x.RoleName, x.Status])).toEqual([
      ['A', 'Failed'],
      ['B', 'Failed'],
      ['Db', 'Failed'],
      ['Vol', 'Failed'],
    ]);
    expect(await leftovers()).toEqual([]);
  });

  it('refuses a role whose folder is a mount point when its own file system lacks room, though the one below has plenty', async () => {
    const used = await usedOf(vol);
    const { result: r, most } = await mostUsedDuring(vol, () => restore(['-RoleName', 'Vol']));
    expect(r.code, r.stderr).toBe(14);
    expect(r.errors.map((e) => e.ErrorId)).toContain('DestinationFull');
    expect(r.stderr).toContain(vol);
    expect(most).toBe(used);
    expect((await fs.readdir(vol)).sort()).toEqual(['today.bin']);
  });

  it('-WhatIf says, file system by file system, the room the restore needs and has, and that it would be refused, writing nothing', async () => {
    const used = [await usedOf(disk), await usedOf(vol)];
    const r = await restore(['-WhatIf']);
    expect(r.code, r.stderr).toBe(0);
    const said = r.stdout + r.stderr;
    expect(said).toContain(`What if: Checking room for the restore: the file system mounted at ${disk} has`);
    expect(said).toContain(`What if: Checking room for the restore: the file system mounted at ${vol} has`);
    expect(warningsIn(r).join('\n')).toMatch(/would be refused: There is not enough room/);
    expect([await usedOf(disk), await usedOf(vol)]).toEqual(used);
    // One role that fits is no refusal.
    const one = await restore(['-RoleName', 'A', '-WhatIf']);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout + one.stderr).toMatch(/What if: Checking room for the restore: .*role A /);
    expect(warningsIn(one).join('\n')).not.toMatch(/would be refused/);
  });

  it('-SkipSpaceCheck stages what the check would refuse (a compressing file system holds a role in less than it recorded)', async () => {
    // 4 MiB free for Vol's 3 MiB: enough for the data, not for the margin the check keeps.
    execFileSync('mount', ['-o', 'remount,size=6m', vol]);
    const refused = await restore(['-RoleName', 'Vol']);
    expect(refused.code, refused.stderr).toBe(14);
    expect(refused.errors.find((e) => e.ErrorId === 'DestinationFull')?.RecommendedAction).toContain('-SkipSpaceCheck');
    const r = expectOk(await restore(['-RoleName', 'Vol', '-SkipSpaceCheck']));
    expect(list(r.json).map((x) => x.Status)).toEqual(['Succeeded']);
    expect(fingerprint(vol)).toBe(backedUp.Vol);
    // Back as the tests after this one expect it: today's 2 MiB alone, on 5 MiB.
    for (const name of await fs.readdir(vol)) await fs.rm(path.join(vol, name), { recursive: true });
    execFileSync('mount', ['-o', 'remount,size=5m', vol]);
    await fs.writeFile(path.join(vol, 'today.bin'), randomBytes(2 * MiB));
  });

  it('restores what fits: one role (its hard link counted once), then all of them once there is room', async () => {
    const one = expectOk(await restore(['-RoleName', 'A']));
    expect(list(one.json).map((x) => x.Status)).toEqual(['Succeeded']);
    expect(fingerprint(path.join(disk, 'a'))).toBe(backedUp.A);

    await fs.rm(path.join(vol, 'today.bin'));
    const v = expectOk(await restore(['-RoleName', 'Vol']));
    expect(list(v.json).map((x) => x.Status)).toEqual(['Succeeded']);
    expect(fingerprint(vol)).toBe(backedUp.Vol);

    // Room made (the disks grown): every role together.
    for (const at of [disk, vol]) execFileSync('mount', ['-o', 'remount,size=16m', at]);
    const all = expectOk(await restore());
    expect(list(all.json).map((x) => [x.RoleName, x.Status])).toEqual([
      ['A', 'Succeeded'],
      ['B', 'Succeeded'],
      ['Db', 'Succeeded'],
      ['Vol', 'Succeeded'],
    ]);
    expect(fingerprint(path.join(disk, 'b'))).toBe(backedUp.B);
    expect(await leftovers()).toEqual([]);
  });
});
