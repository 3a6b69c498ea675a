/**
 * A request that took effect but whose answer the network lost. The blob target tries a dropped
 * connection again, and the conditional requests it repeats then meet their own first attempt: a
 * pack's copy to its final name (If-None-Match: *) found the name taken and the backup failed with
 * "already exists"; a BackupInfo.xml rewrite (If-Match the old ETag) found the ETag changed and
 * Update-BackupEncryption reported the backup removed, "nothing to do", though it was re-wrapped.
 * Every pack a backup writes to a blob container is such a copy, so a flaky link failed backups.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBlobDrill, type BlobDrill } from '../support/blob-drill.js';
import { startBlobProxy, type BlobProxy } from '../support/blob-proxy.js';
import { expectOk, runCli } from '../support/cli.js';
import { list } from '../support/smb-drill.js';

describe('a blob request done whose answer was lost, tried again', () => {
  let d: BlobDrill;
  let proxy: BlobProxy;
  const viaProxy = (args: string[], stdin?: string) => runCli(d.home, args, stdin === undefined ? {} : { stdin });

  beforeAll(async () => {
    d = await makeBlobDrill();
    proxy = await startBlobProxy(d.azurite);
    expectOk(
      await viaProxy(
        ['Set-BackupShare', '-Path', proxy.url(d.container, d.prefix), '-StorageAccountKey', '-', '-EncryptionKey', '-'],
        `${d.azurite.accountKey}\n${d.key}\n`,
      ),
      'Set-BackupShare through the proxy',
    );
    await d.backup();
  });
  afterAll(async () => {
    await proxy?.close();
    await d?.cleanup();
  });

  it("a pack's copy to its final name: the backup succeeds, and its pack is no orphan", async () => {
    // Data of its own, so the backup writes a pack.
    await fs.writeFile(path.join(d.files, 'new.bin'), randomBytes(64 * 1024));
    proxy.arm({
      when: (req) => req.method === 'PUT' && req.headers['x-ms-copy-source'] !== undefined && req.url!.includes('/packs/'),
      dropAnswer: true,
    });
    const r = await viaProxy(['Start-InfrastructureBackup']);
    expect(proxy.armed()).toBe(false);
    expect(r.errors).toEqual([]);
    expect(r.json).toMatchObject({ Status: 'Succeeded' });
    const checked = expectOk(await viaProxy(['Test-BackupRepository']), 'Test-BackupRepository').json;
    expect(checked).toMatchObject({ IsValid: true, OrphanPacks: 0, PacksMissing: 0 });
  });

  it("a BackupInfo.xml's rewrite: Update-BackupEncryption reports the backup re-wrapped, not removed", async () => {
    const rotated = expectOk(await viaProxy(['New-EncryptionKey'])).json;
    expectOk(await viaProxy(['Set-BackupShare', '-EncryptionKey', '-'], `${rotated.Key}\n`), 'Set-BackupShare (new key)');
    const newest = list(expectOk(await viaProxy(['Get-InfrastructureBackup'])).json).find((b) => b.Status === 'Succeeded');
    proxy.arm({
      when: (req) => req.method === 'PUT' && req.headers['if-match'] !== undefined && req.url!.includes('/BackupInfo.xml'),
      dropAnswer: true,
    });
    const r = await viaProxy(['Update-BackupEncryption', '-Name', newest.Name, '-EncryptionKey', '-', '-Confirm:$false'], `${d.key}\n`);
    expect(proxy.armed()).toBe(false);
    expect(r.errors).toEqual([]);
    expect(list(r.json).map((b) => [b.Name, b.EncryptionKeyId])).toEqual([[newest.Name, rotated.KeyId]]);
  });
});
