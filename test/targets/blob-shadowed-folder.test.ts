/**
 * A blob and a folder of one name. Blob storage has no folders: `MASBackup/<stamp>` may be a blob of
 * its own while backups lie below it, and a backup's folder marker may be replaced by a plain blob.
 * The listing took the blob for a file and dropped the folder: every backup of that stamp vanished
 * from Get-InfrastructureBackup, their packs counted as orphans (which prune deletes once a day
 * old), and a backup whose marker was rewritten listed as a leftover for prune to delete whole.
 * Stamp folders have no marker, so a writer whose SAS may only create blobs, not delete or replace
 * any, could so have prune delete backups it could not.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBlobDrill, type BlobDrill } from '../support/blob-drill.js';
import { expectOk } from '../support/cli.js';

describe('a blob named like a folder of backups', () => {
  let d: BlobDrill;
  let first: { Name: string };
  let second: { Name: string };
  const folderOf = async (name: string) => (await d.blobs()).find((b) => b.endsWith(`/${name}`))!;
  beforeAll(async () => {
    d = await makeBlobDrill();
    // Data of its own in each backup: the first one's pack is needed by it alone.
    await fs.writeFile(path.join(d.files, 'data.bin'), randomBytes(64 * 1024));
    first = await d.backup();
    await fs.writeFile(path.join(d.files, 'data.bin'), randomBytes(64 * 1024));
    second = await d.backup();
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('hides no backup, and orphans none of its packs, when created beside its stamp folder', async () => {
    const stampFolder = (await folderOf(first.Name)).split('/').slice(0, 2).join('/');
    // Create-only: the storage refuses this writer any replacement or deletion.
    expect(await d.plant(stampFolder, 'c')).toBe(201);

    expect((await d.listed()).sort()).toEqual([first.Name, second.Name].sort());
    const checked = expectOk(await d.cli(['Test-BackupRepository']), 'Test-BackupRepository').json;
    expect(checked).toMatchObject({ IsValid: true, OrphanPacks: 0, RepositoryBackups: 2 });
    const plan = expectOk(await d.cli(['Invoke-BackupPrune', '-DryRun']), 'Invoke-BackupPrune -DryRun').json;
    expect(plan).toMatchObject({ PathsToDelete: [], PathsInProgress: [], RepositoryPathsToDelete: [] });
  });

  it("is no leftover to delete when a plain blob replaces a backup's folder marker", async () => {
    const folder = await folderOf(second.Name);
    expect(await d.plant(folder, 'w')).toBe(201);

    expect(await d.listed()).toContain(second.Name);
    const plan = expectOk(await d.cli(['Invoke-BackupPrune', '-DryRun']), 'Invoke-BackupPrune -DryRun').json;
    expect(plan).toMatchObject({ PathsToDelete: [], PathsInProgress: [], RepositoryPathsToDelete: [] });
  });
});
