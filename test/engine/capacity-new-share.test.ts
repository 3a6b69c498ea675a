import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';

/**
 * The room a share needs, when this machine's backups go into a store it holds nothing of yet.
 * Defect this pinned: the capacity check multiplied what the last backup added by the backups
 * retention keeps, even for a share this machine had never backed up to: after an unchanged
 * backup (a few hundred bytes added) a new share needed "10 KB", Set-BackupShare accepted one far
 * too small for the first backup there, which stores everything, and that backup then failed with
 * the share full (docs/REPOSITORY.md 9.5: one full backup's worth when the store is empty).
 */

const MiB = 1024 * 1024;

describe('capacity of a share the backups move to', () => {
  let d: Drill;
  let small: string;
  let mounted = false;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await fs.writeFile(path.join(d.files, 'random.bin'), randomBytes(3 * MiB));
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    await d.backup();
    // Unchanged: this backup adds only its catalog.
    expect((await d.backup()).Size).toBeLessThan(64 * 1024);
    small = path.join(d.root, 'small-share');
    await fs.mkdir(small);
  });
  afterAll(async () => {
    if (mounted) execFileSync('umount', [small]);
    await d?.cleanup();
  });

  it('on the share the store is on, is what the retained backups add', async () => {
    const r = expectOk(await d.cli(['Test-BackupShare'])).json;
    expect(r.RequiredCapacity).toBeLessThan(3 * MiB);
  });

  it('on a share this machine never backed up to, holds the first backup, which stores everything', async () => {
    const other = path.join(d.root, 'other-share');
    await fs.mkdir(other);
    expectOk(await d.cli(['Set-BackupShare', '-Path', other]));
    expect(expectOk(await d.cli(['Test-BackupShare'])).json.RequiredCapacity).toBeGreaterThanOrEqual(3 * MiB);
  });

  it('is refused by Set-BackupShare when the share cannot hold that first backup', async (ctx) => {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${2 * MiB}`, 'tmpfs', small], { stdio: 'ignore' });
      mounted = true;
    } catch {
      ctx.skip('mounting a tmpfs is not possible here (needs root)');
    }
    const before = await fs.readFile(path.join(d.home, 'config.json'), 'utf8');
    const r = await d.cli(['Set-BackupShare', '-Path', small]);
    expect(r.code, r.stderr).toBe(14);
    expect(r.errors[0]?.ErrorId).toBe('ShareCapacityExceeded');
    expect(await fs.readFile(path.join(d.home, 'config.json'), 'utf8')).toBe(before);
  });
});
