/**
 * A local (or mounted) backup folder may hold names no target path can: '\' is an ordinary
 * character in a Linux file name, but target paths refuse it. Anyone who may write to the folder
 * could put `MASBackup/<stamp>/a\b` there; listing the tree handed that name back to the target,
 * which refused it as an internal error, and Get-InfrastructureBackup, Invoke-BackupPrune and every
 * backup then failed.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';

describe('names in a local backup folder that target paths cannot hold', () => {
  let d: Drill;
  let first: { Name: string };
  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    first = await d.backup();
    const masBackup = path.join(d.share, 'MASBackup');
    const [stamp] = await fs.readdir(masBackup);
    await fs.mkdir(path.join(masBackup, stamp!, 'stray\\folder'));
    await fs.writeFile(path.join(masBackup, stamp!, 'stray\\file'), 'x');
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('stop neither listing, nor prune, nor the next backup', async () => {
    const listed = await d.cli(['Get-InfrastructureBackup']);
    expect(listed.errors).toEqual([]);
    expect([listed.json].flat().map((b: { Name: string }) => b.Name)).toEqual([first.Name]);
    const pruned = await d.cli(['Invoke-BackupPrune', '-Confirm:$false']);
    expect(pruned.errors).toEqual([]);
    expect(pruned.code).toBe(0);
    expectOk(await d.cli(['Start-InfrastructureBackup']), 'Start-InfrastructureBackup');
  });
});
