import path from 'node:path';
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';

/**
 * Get-BackupConfiguration's AvailableCapacity (a BackupLocation property the SPEC names) was
 * always null. It is now the configured share's free space as Set-BackupShare or
 * Test-BackupShare last measured it, with AvailableCapacityMeasured saying when: a Get reaches no
 * share, so it answers while the share is down, and says how old its figure is.
 */

let d: Drill;
const shown = async () => expectOk(await d.cli(['Get-BackupConfiguration']), 'Get-BackupConfiguration').json;

describe('AvailableCapacity of the backup location', () => {
  beforeAll(async () => {
    d = await makeDrill({ roles: false });
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('is what Set-BackupShare measured, and Test-BackupShare measures it again', async () => {
    const { bavail, bsize } = await fs.statfs(d.share);
    const first = await shown();
    expect(first.AvailableCapacity).toBeGreaterThan(0);
    // The same file system, measured a moment apart: within 64 MiB of what statfs says now.
    expect(Math.abs(first.AvailableCapacity - Number(bavail * bsize))).toBeLessThan(64 * 1024 * 1024);
    expect(Date.parse(first.AvailableCapacityMeasured)).toBeLessThanOrEqual(Date.now());

    await new Promise((r) => setTimeout(r, 20));
    expectOk(await d.cli(['Test-BackupShare']), 'Test-BackupShare');
    const again = await shown();
    expect(Date.parse(again.AvailableCapacityMeasured)).toBeGreaterThan(Date.parse(first.AvailableCapacityMeasured));
  });

  it('is not shown for another share than the one measured (a new share set without validation)', async () => {
    const other = path.join(d.root, 'other-share');
    await fs.mkdir(other);
    expectOk(await d.cli(['Set-BackupShare', '-Path', other, '-SkipValidation']), 'Set-BackupShare -SkipValidation');
    const now = await shown();
    expect(now.Path).toBe(other);
    expect(now.AvailableCapacity).toBeNull();
    expect(now.AvailableCapacityMeasured).toBeNull();
  });
});
