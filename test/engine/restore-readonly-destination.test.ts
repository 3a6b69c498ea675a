import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { list, makeDrill, type Drill } from '../support/cli.js';

/**
 * A redeployed machine whose destination folders are missing, on a file system mounted read-only
 * (a root file system left read-only after a failed boot, an image mounted ro): the restore must
 * say that the file system is read-only, not that something does not exist (Node's recursive mkdir
 * reports EROFS as ENOENT), and name what to do.
 */

let d: Drill;
let mnt: string;
let mounted = false;
afterAll(async () => {
  if (mounted) execFileSync('umount', [mnt]);
  await d?.cleanup();
});

describe('a restore whose destinations lie in missing folders of a read-only file system', () => {
  it('says the file system is read-only, for a folder role and a sqlite role', async (ctx) => {
    d = await makeDrill({ roles: false });
    mnt = path.join(d.root, 'disk');
    const folder = path.join(mnt, 'pki', 'ca');
    const db = path.join(mnt, 'identity', 'identity.db');
    await fs.mkdir(folder, { recursive: true });
    await fs.writeFile(path.join(folder, 'ca.key'), 'the CA key');
    await fs.mkdir(path.dirname(db));
    await fs.copyFile(d.db, db);
    await d.register('CA', ['-Provider', 'directory', '-Path', folder]);
    await d.register('Identity', ['-Provider', 'sqlite', '-DatabasePath', db]);
    const name = (await d.backup()).Name;
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,ro', 'tmpfs', mnt], { stdio: 'ignore' });
      mounted = true;
    } catch {
      ctx.skip('mounting a tmpfs is not possible here (needs root)');
    }
    const { args, stdin } = d.decryptArgs();
    for (const role of ['CA', 'Identity']) {
      const r = await d.cli(['Restore-AzsBackup', '-Name', name, '-RoleName', role, ...args, '-Confirm:$false'], { stdin });
      expect(r.code, r.stderr).toBe(1);
      expect(list(r.json).map((x) => [x.RoleName, x.Status])).toEqual([[role, 'Failed']]);
      const error = r.errors.at(-1)!;
      expect(error.ErrorId, r.stderr).toBe(role === 'CA' ? 'DirectoryImportFailed' : 'SqliteImportFailed');
      expect(error.Message).toMatch(/read-only file system/i);
      expect(error.Message).not.toMatch(/ENOENT|no such file/i);
      expect(error.RecommendedAction).toBeTruthy();
    }
  });
});
