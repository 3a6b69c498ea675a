import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, freshHome, makeDrill, type Drill, warningsIn } from '../support/cli.js';

/**
 * On a rebuilt machine the operator types the share's path from memory. One folder off (the
 * share's root instead of its folder, or the MASBackup folder itself), Get-InfrastructureBackup
 * listed nothing with exit 0 and no hint, and Restore-AzsBackup's BackupNotFound sent them back to
 * that empty listing.
 */

describe('Get-InfrastructureBackup -Path one folder off', () => {
  let d: Drill;
  let home: string;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    await d.backup();
    home = await freshHome(d);
  });
  afterAll(async () => d?.cleanup());

  const listing = async (p: string) => {
    const r = expectOk(await d.cli(['Get-InfrastructureBackup', '-Path', p], { env: { AZSBACKUP_HOME: home } }));
    return { json: r.json, warnings: warningsIn(r.stderr) };
  };

  it('names the folder below that holds MASBackup, or the one above a MASBackup folder', async () => {
    const above = await listing(d.root);
    expect(above.json ?? []).toEqual([]);
    expect(above.warnings.join('\n')).toContain(`${d.root}/share does: give it as -Path`);

    const inside = await listing(path.join(d.share, 'MASBackup'));
    expect(inside.warnings.join('\n')).toContain(`is a MASBackup folder itself: give the folder that holds it as -Path (${d.share})`);

    const empty = path.join(d.root, 'empty');
    await fs.mkdir(empty);
    expect((await listing(empty)).warnings.join('\n')).toMatch(/holds no MASBackup folder: no backup was made there/);
  });

  it('says nothing where the path is right', async () => {
    const right = await listing(d.share);
    expect([right.json].flat()).toHaveLength(1);
    expect(right.warnings).toEqual([]);
  });
});
