import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canMount, homeOnSmallDisk } from '../support/mounts.js';
import { Database } from '../support/provider-fixtures.js';
import { expectOk, makeDrill, runCli, type Drill } from '../support/cli.js';

/**
 * A sqlite role is read from a consistent copy the backup makes in its private folder, under
 * AZSBACKUP_HOME. Defect this pinned: with no room there for the copy, the role failed as "Copying
 * the database '<the live database>' failed: database or disk is full": it named the database,
 * whose own disk had room, and not the folder that was full, so the operator looked at the wrong disk.
 * And a role's failure in the backup's output advised "Fix the role's source named in the message"
 * whatever the role's own error advised.
 */

describe.skipIf(!canMount)('a sqlite role whose copy does not fit in AZSBACKUP_HOME', () => {
  let d: Drill;
  let mnt: string;
  let home: string;
  let mounted = false;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    ({ mnt, home } = await homeOnSmallDisk(d));
    mounted = true;
    // 2.5 MB of database beside the drill, on a disk with room to spare.
    const big = path.join(d.root, 'big.sqlite');
    const db = new Database(big);
    db.exec('CREATE TABLE t (x BLOB)');
    const insert = db.prepare('INSERT INTO t VALUES (?)');
    db.transaction(() => {
      for (let i = 0; i < 300; i++) insert.run(randomBytes(8000));
    })();
    db.close();
    expectOk(await runCli(home, ['Register-InfrastructureRole', '-Name', 'Big', '-Provider', 'sqlite', '-DatabasePath', big]));
  });
  afterAll(async () => {
    if (mounted) execFileSync('umount', [mnt]);
    await d?.cleanup();
  });

  it('fails saying AZSBACKUP_HOME has no room for the copy, and leaves no copy behind', async () => {
    const r = await runCli(home, ['Start-InfrastructureBackup']);
    expect(r.code, r.stderr).not.toBe(0);
    const error = String(r.json?.RoleStatus?.[0]?.Error);
    expect(error, r.stderr).toMatch(/AZSBACKUP_HOME/);
    expect(error).toContain(home);
    expect(error).toMatch(/no room/);
    expect(error).toMatch(/big\.sqlite/);
    // The private folder's copy is gone with the command.
    const left = await fs.readdir(path.join(home, 'private')).catch(() => [] as string[]);
    for (const dir of left) expect(await fs.readdir(path.join(home, 'private', dir))).toEqual([]);
  });

  it("advises to make room in AZSBACKUP_HOME, not to fix the role's source", async () => {
    const r = await runCli(home, ['Start-InfrastructureBackup']);
    const record = r.errors.find((e) => e.TargetObject === 'Big');
    expect(record, r.stderr).toBeDefined();
    expect(record!.RecommendedAction).toMatch(/room/);
    expect(record!.RecommendedAction).toMatch(/AZSBACKUP_HOME/);
    expect(record!.RecommendedAction).not.toMatch(/source/);
  });
});
