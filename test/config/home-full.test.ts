import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDrill, runCli, type Drill } from '../support/cli.js';

/**
 * AZSBACKUP_HOME on a full file system. Defect this pinned: a configuration change took its lock
 * (config.lock) through a write that failed with ENOSPC, and that failure reached the operator as
 * "internal error ... This is a bug in AzsBackup" with Node's stack trace (exit 1), not as the full
 * disk it was. The configuration itself always survived (written whole, then renamed).
 */

describe('a configuration change with AZSBACKUP_HOME on a full file system', () => {
  let d: Drill;
  let mnt: string;
  let home: string;
  let mounted = false;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    mnt = path.join(d.root, 'small');
    await fs.mkdir(mnt);
  });
  afterAll(async () => {
    if (mounted) execFileSync('umount', [mnt]);
    await d?.cleanup();
  });

  it('is InsufficientSpace (exit 14) with its remedy, and config.json stays as it was', async (ctx) => {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { stdio: 'ignore' });
      mounted = true;
    } catch {
      ctx.skip('mounting a tmpfs is not possible here (needs root)');
    }
    home = path.join(mnt, 'home');
    await fs.cp(d.home, home, { recursive: true });
    // Every block the file system has left goes to a filler.
    const filler = await fs.open(path.join(mnt, 'filler'), 'w');
    try {
      for (;;) await filler.write(Buffer.alloc(4096));
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      await filler.close();
    }
    const before = await fs.readFile(path.join(home, 'config.json'));

    for (const args of [
      ['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', d.files],
      ['Set-BackupShare', '-BackupRetentionPeriodInDays', '9'],
    ]) {
      const r = await runCli(home, args);
      expect(
        r.errors.map((e) => e.ErrorId),
        r.stderr,
      ).toEqual(['InsufficientSpace']);
      expect(r.code, r.stderr).toBe(14);
      expect(r.errors[0]!.RecommendedAction).toMatch(/room/);
      expect(await fs.readFile(path.join(home, 'config.json'))).toEqual(before);
    }
  });
});
