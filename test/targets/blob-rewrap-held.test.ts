/**
 * Update-BackupEncryption on a backup whose BackupInfo.xml the storage holds (a lease, as the drill
 * uses for a retention hold; an immutability policy or legal hold likewise). The service refused the
 * rewrite with 412 LeaseIdMissing, which the blob target took for the 412 of a replace-only write to
 * a blob gone meanwhile: the backup was reported "removed (by a prune, say) ... Nothing to do for
 * this backup: it is no longer on the share", while it was still there, wrapped only for the old key.
 * An operator who then retired that key could never restore it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBlobDrill, type BlobDrill } from '../support/blob-drill.js';
import { expectOk } from '../support/cli.js';
import { list } from '../support/smb-drill.js';

describe('Update-BackupEncryption on a backup the storage holds', () => {
  let d: BlobDrill;
  beforeAll(async () => {
    d = await makeBlobDrill();
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('says it is held and still needs the old key, and re-wraps it once released', async () => {
    const held = await d.backup();
    const other = await d.backup();
    const info = (await d.blobs()).find((b) => b.endsWith(`${held.Name}/BackupInfo.xml`))!;
    const lease = d.azurite.container(d.container).getBlobClient(`${d.prefix}/${info}`).getBlobLeaseClient();
    await lease.acquireLease(-1);
    const oldKeyId = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json)[0].EncryptionKeyId;
    const rotated = expectOk(await d.cli(['New-EncryptionKey'])).json;
    expectOk(await d.cli(['Set-BackupShare', '-EncryptionKey', '-'], { stdin: `${rotated.Key}\n` }), 'Set-BackupShare (new key)');

    const r = await d.cli(['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${d.key}\n` });
    expect(r.code).not.toBe(0);
    expect(list(r.json).map((b) => [b.Name, b.EncryptionKeyId])).toEqual([[other.Name, rotated.KeyId]]);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ ErrorId: 'ShareObjectRetained' });
    expect(r.errors[0]!.Message).not.toMatch(/removed/);
    expect(r.errors[0]!.RecommendedAction).not.toMatch(/Nothing to do/);
    const keys = Object.fromEntries(list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).map((b) => [b.Name, b.EncryptionKeyId]));
    expect(keys).toEqual({ [held.Name]: oldKeyId, [other.Name]: rotated.KeyId });

    await lease.releaseLease();
    expectOk(
      await d.cli(['Update-BackupEncryption', '-Name', held.Name, '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${d.key}\n` }),
      'Update-BackupEncryption once released',
    );
    const after = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(after.map((b) => b.EncryptionKeyId)).toEqual([rotated.KeyId, rotated.KeyId]);
  });
});
