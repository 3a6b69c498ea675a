import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dbRows, list, makeDrill, type Drill } from '../support/cli.js';

/**
 * A sqlite role restored onto a file system that has no room left, or that is read-only: the
 * database stays as it was, nothing of ours is left beside it, and the error says what the
 * operator must fix (a full disk is DestinationFull, exit 14, whatever the provider).
 */

let d: Drill;
let mnt: string;
let db: string;
let name: string;
let mounted = false;

function mountSmall(ctx: { skip(note: string): void }, options: string): void {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', mnt], { stdio: 'ignore' });
    mounted = true;
  } catch {
    ctx.skip('mounting a tmpfs is not possible here (needs root)');
  }
}

beforeAll(async () => {
  d = await makeDrill({ roles: false });
  mnt = path.join(d.root, 'small-disk');
  await fs.mkdir(mnt);
  db = path.join(mnt, 'identity.db');
  await fs.copyFile(d.db, db);
  await d.register('Identity', ['-Provider', 'sqlite', '-DatabasePath', db]);
  name = (await d.backup()).Name;
}, 120_000);
afterEach(() => {
  if (mounted) execFileSync('umount', [mnt]);
  mounted = false;
});
afterAll(async () => d?.cleanup());

async function todaysDatabase(): Promise<unknown[]> {
  await fs.copyFile(d.db, db);
  execFileSync('sqlite3', [db, "INSERT INTO items (name) VALUES ('added today')"]);
  return dbRows(db);
}

async function restore() {
  const { args, stdin } = d.decryptArgs();
  return d.cli(['Restore-AzsBackup', '-Name', name, ...args, '-Confirm:$false'], { stdin });
}

describe('a sqlite role restored onto a full file system', () => {
  it('fails as DestinationFull (exit 14), the database as it was and nothing of ours beside it', async (ctx) => {
    mountSmall(ctx, 'size=1m');
    const rows = await todaysDatabase();
    // What room is left is taken.
    await fs.writeFile(path.join(mnt, 'filler'), Buffer.alloc(4 * 1024 * 1024)).catch(() => undefined);
    const r = await restore();
    expect(r.code, r.stderr).toBe(14);
    expect(r.errors.map((e) => e.ErrorId)).toContain('DestinationFull');
    expect(list(r.json).map((x) => [x.RoleName, x.Status])).toEqual([['Identity', 'Failed']]);
    expect(dbRows(db)).toEqual(rows);
    expect((await fs.readdir(mnt)).filter((n) => n.includes('.azs-'))).toEqual([]);
  });
});

describe('a sqlite role restored onto a read-only file system', () => {
  it('fails naming the destination and what to do, the database as it was', async (ctx) => {
    mountSmall(ctx, 'size=4m');
    const rows = await todaysDatabase();
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    const r = await restore();
    expect(r.code, r.stderr).toBe(1);
    const error = r.errors.find((e) => e.ExitCode === 1)!;
    expect(error.ErrorId, r.stderr).not.toBe('RoleRestoreFailed');
    expect(String(error.TargetObject)).toContain(mnt);
    expect(error.RecommendedAction).toBeTruthy();
    expect(dbRows(db)).toEqual(rows);
    expect((await fs.readdir(mnt)).filter((n) => n.includes('.azs-'))).toEqual([]);
  });
});
