import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';
import { filesUnder, shareWithCollectablePack } from '../support/collectable.js';

/**
 * Invoke-BackupPrune says what it frees, and -DryRun says what the real run then does. Defect this
 * pinned: the temporary file of an interrupted rewrite (Update-BackupEncryption killed while it
 * replaced BackupInfo.xml) inside a backup that had expired was counted twice: once with the backup
 * folder that held it and once as a leftover of its own, so BytesFreed said more than left the
 * share, LeftoversRemoved counted a leftover that went with its backup, and PathsToDelete named a
 * file inside a folder it already named.
 */

/** The bytes of every file on the share. */
async function bytesOn(share: string): Promise<number> {
  let total = 0;
  for (const f of await filesUnder(share)) total += (await fs.stat(f)).size;
  return total;
}

describe('BytesFreed', () => {
  let d: Drill;

  beforeAll(async () => {
    d = await makeDrill({ roles: false, retentionDays: 2 });
  });
  afterAll(async () => d?.cleanup());

  it('is what left the share, in the dry run and the real one, with an interrupted rewrite inside an expired backup', async () => {
    await shareWithCollectablePack(d);
    const backups = [expectOk(await d.cli(['Get-InfrastructureBackup'])).json].flat();
    const expired = path.relative(d.share, await d.backupFolder(backups[1].Name));
    const rewrite = `${expired}/.azs-partial-0123456789ab-BackupInfo.xml`;
    await fs.writeFile(path.join(d.share, rewrite), Buffer.alloc(100_000, '<'));

    const dry = expectOk(await d.cli(['Invoke-BackupPrune', '-DryRun'])).json;
    const before = await bytesOn(d.share);
    const r = expectOk(await d.cli(['Invoke-BackupPrune'])).json;
    // Every byte deleted: what left the share, and the new index files written in place of old ones.
    let written = 0;
    for (const f of r.IndexFilesWritten) written += (await fs.stat(path.join(d.share, f))).size;
    const freed = before - (await bytesOn(d.share)) + written;

    expect(r.PacksRemoved).toBe(1);
    expect(r).toMatchObject({ BackupsRemoved: 1, LeftoversRemoved: 0, PathsToDelete: [expired] });
    expect(r.BytesFreed).toBe(freed);
    expect({ ...dry, DryRun: false, IndexFilesWritten: r.IndexFilesWritten }).toEqual(r);
  });
});
