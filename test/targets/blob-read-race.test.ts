/**
 * A blob replaced or removed by another machine while this one reads it. The blob target measures a
 * blob (HEAD), then fetches it on the condition of the ETag it measured (If-Match), so a read never
 * mixes two versions; the service's refusal (412 ConditionNotMet) then went up raw. A BackupInfo.xml
 * rewritten in that moment (Update-BackupEncryption on another machine rewrites every one) made
 * Get-InfrastructureBackup, Invoke-BackupPrune and Test-InfrastructureBackup fail as an internal
 * error, 'This is a bug', where a local folder or SMB share gives the old file or the new one; a
 * pack removed mid-read (another machine's prune) was reported in HTTP's words ('The condition
 * specified using HTTP conditional header(s) is not met'), as damage to check the share for.
 *
 * The command line reaches Azurite through a loopback proxy (test/support/blob-proxy.ts) that does
 * the other machine's part just before it forwards the request it is armed for.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type http from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobTarget } from '../../src/targets/blob.js';
import { parseShareLocation, type BlobLocation } from '../../src/targets/location.js';
import { startAzurite, type AzuriteServer } from '../support/azurite.js';
import { makeBlobDrill, type BlobDrill } from '../support/blob-drill.js';
import { startBlobProxy, type BlobProxy } from '../support/blob-proxy.js';
import { expectOk, runCli } from '../support/cli.js';
import { list } from '../support/smb-drill.js';

describe('a blob replaced or removed while it is read', () => {
  let d: BlobDrill;
  let proxy: BlobProxy;
  let backup: { Name: string };
  const viaProxy = (args: string[], stdin?: string) => runCli(d.home, args, stdin === undefined ? {} : { stdin });

  beforeAll(async () => {
    // Incompressible and larger than a read's 4 MiB range: a pack is read in several requests.
    d = await makeBlobDrill({ randomBytes: 12 << 20 });
    proxy = await startBlobProxy(d.azurite);
    backup = await d.backup();
    expectOk(
      await viaProxy(
        ['Set-BackupShare', '-Path', proxy.url(d.container, d.prefix), '-StorageAccountKey', '-', '-EncryptionKey', '-'],
        `${d.azurite.accountKey}\n${d.key}\n`,
      ),
      'Set-BackupShare through the proxy',
    );
  });
  afterAll(async () => {
    await proxy?.close();
    await d?.cleanup();
  });

  it('a BackupInfo.xml rewritten between its measure and its fetch is read as one version or the other', async () => {
    // Rewritten as Update-BackupEncryption rewrites it: whole, in one request, with a new ETag.
    const rewrite = async (name: string) => {
      const blob = d.azurite.container(d.container).getBlockBlobClient(name);
      const bytes = await blob.downloadToBuffer();
      await blob.upload(bytes, bytes.length);
    };
    for (const args of [['Get-InfrastructureBackup'], ['Invoke-BackupPrune'], ['Test-InfrastructureBackup', '-Name', backup.Name]]) {
      proxy.arm({ when: (req) => req.method === 'GET' && req.url!.includes('/BackupInfo.xml'), before: rewrite });
      const r = await viaProxy(args);
      expect(proxy.armed(), `${args[0]} read BackupInfo.xml`).toBe(false);
      expect(r.errors, args[0]).toEqual([]);
      expect(r.code, args[0]).toBe(0);
      if (args[0] === 'Get-InfrastructureBackup') expect(list(r.json).map((b) => b.Name)).toEqual([backup.Name]);
    }
  });

  it('a pack removed while it is read is reported missing, not in the words of HTTP', async () => {
    const remove = async (name: string) => {
      await d.azurite.container(d.container).getBlockBlobClient(name).delete();
    };
    const laterRangeOfAPack = (req: http.IncomingMessage) =>
      req.method === 'GET' && req.url!.includes('.pack') && /bytes=[1-9]/.test(String(req.headers['x-ms-range'] ?? ''));

    proxy.arm({ when: laterRangeOfAPack, before: remove });
    const checked = await viaProxy(['Test-InfrastructureBackup', '-Name', backup.Name]);
    expect(proxy.armed()).toBe(false);
    expect(checked.code).toBe(12);
    expect(checked.errors[0]!.Message).toMatch(/is missing from the share/);
    expect(checked.stderr).not.toMatch(/HTTP conditional header/);

    const made = await d.backup();
    await fs.rm(d.files, { recursive: true });
    proxy.arm({ when: laterRangeOfAPack, before: remove });
    const restored = await viaProxy(['Restore-AzsBackup', '-Name', made.Name, '-EncryptionKey', '-', '-Confirm:$false'], `${d.key}\n`);
    expect(proxy.armed()).toBe(false);
    expect(restored.code).not.toBe(0);
    expect(list(restored.json)[0]).toMatchObject({ Status: 'Failed', Error: expect.stringMatching(/does not exist/) });
    expect(restored.stderr).not.toMatch(/HTTP conditional header/);
  });
});

describe('the blob target reading a blob replaced after its first range', () => {
  let az: AzuriteServer;
  beforeAll(async () => {
    az = await startAzurite();
    await az.createContainer('shared');
  });
  afterAll(async () => {
    await az?.stop();
  });

  it('fails the read as ShareObjectChanged, never mixing the two versions', async () => {
    const target = new BlobTarget(parseShareLocation(az.url('shared', 'site-a')) as BlobLocation, { accountKey: az.accountKey });
    // Ten 4 MiB ranges, at most four of them fetched ahead of the reader.
    await target.write('catalog', Readable.from([randomBytes(40 << 20)]));
    const reading = (await target.read('catalog'))[Symbol.asyncIterator]();
    await reading.next();
    await target.write('catalog', Readable.from([randomBytes(1024)]));
    const drained = (async () => {
      while (!(await reading.next()).done);
    })();
    await expect(drained).rejects.toMatchObject({ errorId: 'ShareObjectChanged', retryable: true, targetObject: 'catalog' });
  });
});
