import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, list, makeDrill, warningsIn, type Drill } from '../support/cli.js';

/**
 * A restore of several roles, all staged before the first goes into place, that meets a full disk
 * at a later role's destination: every destination stays as it was, each role's result says truly
 * why it was not restored, and the same restore finishes once there is room.
 */

describe('a restore of several roles whose later role finds its disk full', () => {
  let d2: Drill;
  let mnt: string;
  let mounted = false;
  afterAll(async () => {
    if (mounted) execFileSync('umount', [mnt]);
    await d2?.cleanup();
  });

  it('says of the role staged before it that it was not put into place because of the later one, and the restore run again with room finishes', async (ctx) => {
    d2 = await makeDrill({ roles: false });
    const early = path.join(d2.root, 'early');
    await fs.mkdir(early);
    await fs.writeFile(path.join(early, 'ca.key'), 'the CA key as backed up');
    mnt = path.join(d2.root, 'small-disk');
    const big = path.join(mnt, 'big');
    await fs.mkdir(big, { recursive: true });
    await fs.writeFile(path.join(big, 'data.bin'), randomBytes(3 * 1024 * 1024));
    for (let i = 0; i < 20; i++) await fs.writeFile(path.join(big, `part-${i}.txt`), `part ${i}\n`);
    await d2.register('Early', ['-Provider', 'directory', '-Path', early, '-RestoreOrder', '5']);
    await d2.register('Big', ['-Provider', 'directory', '-Path', big, '-RestoreOrder', '10']);
    const name = (await d2.backup()).Name;
    const bigBackedUp = fingerprint(big);
    await fs.rm(big, { recursive: true });
    try {
      // Bytes enough (the restore's check of room before staging lets it through), but too few
      // inodes for Big's files: the disk is found full only while Big is staged.
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,nr_inodes=12', 'tmpfs', mnt], { stdio: 'ignore' });
      mounted = true;
    } catch {
      ctx.skip('mounting a small tmpfs is not possible here (needs root)');
    }
    await fs.mkdir(big);
    await fs.writeFile(path.join(big, 'today.txt'), 'the data as it is today\n');
    await fs.writeFile(path.join(early, 'ca.key'), 'the CA key as it is today');
    const [earlyBefore, bigBefore] = [fingerprint(early), fingerprint(big)];

    const { args, stdin } = d2.decryptArgs();
    const restore = ['Restore-AzsBackup', '-Name', name, ...args, '-Confirm:$false'];
    const r = await d2.cli(restore, { stdin });
    expect(r.code, r.stderr).toBe(14);
    expect(r.errors.map((e) => e.ErrorId)).toContain('DestinationFull');
    const results = list(r.json);
    expect(results.map((x) => [x.RoleName, x.Status])).toEqual([
      ['Early', 'Skipped'],
      ['Big', 'Failed'],
    ]);
    // Early comes first in restore order: Big did not fail 'before it'.
    expect(results[0].Error).not.toMatch(/before it/);
    expect(results[0].Error).toContain('Big');
    expect(warningsIn(r).join('\n')).not.toMatch(/Big failed before/);
    expect(warningsIn(r).join('\n')).toContain('-RoleName Early');
    expect(fingerprint(early)).toBe(earlyBefore);
    expect(fingerprint(big)).toBe(bigBefore);
    expect((await fs.readdir(mnt)).sort()).toEqual(['big']);
    expect((await fs.readdir(d2.root)).filter((n) => n.includes('.azs-'))).toEqual([]);

    // Room made (the disk given inodes): the same restore finishes the job.
    execFileSync('mount', ['-o', 'remount,nr_inodes=4096', mnt]);
    const again = expectOk(await d2.cli(restore, { stdin }));
    expect(list(again.json).map((x) => [x.RoleName, x.Status])).toEqual([
      ['Early', 'Succeeded'],
      ['Big', 'Succeeded'],
    ]);
    expect(fingerprint(big)).toBe(bigBackedUp);
    expect(await fs.readFile(path.join(early, 'ca.key'), 'utf8')).toBe('the CA key as backed up');
  });
});
