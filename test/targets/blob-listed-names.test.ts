/**
 * Blob names no target path can hold, put in the container by another writer or tool. Blob
 * storage has no folders: a name may end in '/' (the placeholder some tools make for a "folder"),
 * hold an empty segment ('a//b') or a '\'. Listed below a stamp folder, such a name was handed back
 * to the target as `MASBackup/<stamp>/` and refused as an internal error ('has an empty segment'),
 * so every Invoke-BackupPrune failed before it removed anything: retention stopped and the
 * container filled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBlobDrill, type BlobDrill } from '../support/blob-drill.js';

describe('blob names in the container that no target path can hold', () => {
  let d: BlobDrill;
  let first: { Name: string };
  beforeAll(async () => {
    d = await makeBlobDrill();
    first = await d.backup();
    const stamp = (await d.blobs()).find((b) => b.includes(first.Name))!.split('/')[1]!;
    // A folder placeholder ending in '/' beside the backup, and stamp folders holding only such names.
    for (const name of [`MASBackup/${stamp}/`, 'MASBackup/20200101T000000Z//stray', 'MASBackup//stray']) {
      expect(await d.plant(name, 'acw')).toBe(201);
    }
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('stop neither listing, nor prune, nor the next backup', async () => {
    expect(await d.listed()).toEqual([first.Name]);
    const pruned = await d.cli(['Invoke-BackupPrune', '-Confirm:$false']);
    expect(pruned.errors).toEqual([]);
    expect(pruned.code).toBe(0);
    expect(pruned.json).toMatchObject({ BackupsKept: 1, BackupsRemoved: 0 });
    const second = await d.backup();
    expect((await d.listed()).sort()).toEqual([first.Name, second.Name].sort());
  });
});
