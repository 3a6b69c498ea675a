import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canMount, homeOnSmallDisk } from '../support/mounts.js';
import { fingerprint, makeDrill, runCli, type Drill } from '../support/cli.js';

/**
 * A role restored into a program is read from local copies the restore keeps in AZSBACKUP_HOME
 * (spooled-target.ts). Defect this pinned: with no room there, the restore failed as
 * RestoreCopyNoSpace with exit 10, which the exit codes give to a share or backup not found or
 * unreachable; a full disk is exit 14 (insufficient capacity) everywhere else.
 */

describe.skipIf(!canMount)('a restore whose local copies do not fit in AZSBACKUP_HOME', () => {
  let d: Drill;
  let mnt: string;
  let home: string;
  let mounted = false;
  let name: string;

  beforeAll(async () => {
    d = await makeDrill();
    // The role's own data larger than the room left: its copy cannot fit, in whichever pack its chunks landed.
    await fs.writeFile(path.join(d.tarred, 'large.bin'), randomBytes(1024 * 1024));
    name = (await d.backup()).Name;
    ({ mnt, home } = await homeOnSmallDisk(d));
    mounted = true;
    // Room for the job's own records, not for a copy of a pack.
    const { size } = await fs.statfs(mnt).then((s) => ({ size: s.bavail * s.bsize }));
    await fs.writeFile(path.join(mnt, 'filler'), Buffer.alloc(size - 256 * 1024));
  });
  afterAll(async () => {
    if (mounted) execFileSync('umount', [mnt]);
    await d?.cleanup();
  });

  it('fails with exit 14, says to make room in AZSBACKUP_HOME, and changes nothing', async () => {
    const before = fingerprint(d.tarred);
    const { args, stdin } = d.decryptArgs();
    const r = await runCli(home, ['Restore-AzsBackup', '-Name', name, '-RoleName', 'Tarred', ...args, '-Confirm:$false'], { stdin });
    expect(
      r.errors.map((e) => e.ErrorId),
      r.stderr,
    ).toContain('RestoreCopyNoSpace');
    expect(r.code, r.stderr).toBe(14);
    expect(r.errors.find((e) => e.ErrorId === 'RestoreCopyNoSpace')!.RecommendedAction).toMatch(/AZSBACKUP_HOME/);
    expect(fingerprint(d.tarred)).toBe(before);
  });
});
