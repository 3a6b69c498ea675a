import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aclOf, aclTools } from '../support/acl.js';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';

/**
 * The files cache and extended attributes (ACLs). A file whose attributes change has a new ctime,
 * so the cache reads it again. A file cached before attributes were archived (by an older version,
 * or without the addons that read them) has its record in header format 1: it is read again once,
 * so its ACL reaches the store, and not left out for as long as the file stays unchanged.
 */

let d: Drill;
/** The clock's window alone decides what the cache remembers (not the 40 s of the kernel's writeback). */
const CLOCK_ONLY = { AZSBACKUP_TEST_DIRTY_PAGES_MS: '0' };
const acl = aclOf;

async function restoreFiles(name: string): Promise<void> {
  const { args, stdin } = d.decryptArgs();
  expectOk(
    await d.cli(['Restore-AzsBackup', '-Name', name, '-RoleName', 'Files', ...args, '-Confirm:$false'], { stdin }),
    'Restore-AzsBackup',
  );
}

describe.skipIf(!aclTools)('files cache and ACLs', () => {
  beforeAll(async () => {
    d = await makeDrill();
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('a file cached before its ACL was archived is read again once, and its ACL restored', async () => {
    const file = `${d.files}/cloud.json`;
    execFileSync('setfacl', ['-m', 'u:nobody:r', file]);
    const withAcl = acl(file);
    // As an older version, or a machine without the addons, cached it: without its attributes.
    expectOk(
      await d.cli(['Start-InfrastructureBackup', '-RoleName', 'Files'], { env: { ...CLOCK_ONLY, AZSBACKUP_NATIVE: 'off' } }),
      'the first backup',
    );
    const second = expectOk(
      await d.cli(['Start-InfrastructureBackup', '-RoleName', 'Files'], { env: CLOCK_ONLY }),
      'the second backup',
    ).json;
    execFileSync('setfacl', ['-b', file]);
    expect(acl(file)).not.toBe(withAcl);
    await restoreFiles(second.Name);
    expect(acl(file)).toBe(withAcl);
  }, 120_000);

  it('an ACL changed between two backups reaches the second', async () => {
    const file = `${d.files}/cloud.json`;
    expectOk(await d.cli(['Start-InfrastructureBackup', '-RoleName', 'Files'], { env: CLOCK_ONLY }), 'a backup');
    execFileSync('setfacl', ['-m', 'u:nobody:rw', file]);
    const changed = acl(file);
    const after = expectOk(await d.cli(['Start-InfrastructureBackup', '-RoleName', 'Files'], { env: CLOCK_ONLY }), 'the backup after').json;
    execFileSync('setfacl', ['-b', file]);
    await restoreFiles(after.Name);
    expect(acl(file)).toBe(changed);
  }, 120_000);
});
