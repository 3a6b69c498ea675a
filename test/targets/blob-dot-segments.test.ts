/**
 * Blob names another writer put in the container, with '.' or '..' segments
 * (`<prefix>/backups/old/../../../other/config.xml`, which the storage keeps as it is named),
 * reached beyond the target's root: the SDK builds a blob's URL from its name, and a URL resolves
 * its dot segments. Deleting a backup folder listed such a blob and deleted the one its name
 * resolved to, outside the folder and even outside the prefix (another repository's config.xml);
 * renaming a folder copied it there. A writer allowed only to add blobs could so have prune delete
 * what it could not.
 */
import http from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobTarget } from '../../src/targets/blob.js';
import { parseShareLocation, type BlobLocation } from '../../src/targets/location.js';
import { startAzurite, type AzuriteServer } from '../support/azurite.js';

describe('blob names with dot segments, put there by another writer', () => {
  let az: AzuriteServer;
  let target: BlobTarget;
  const exists = async (name: string) => az.container('shared').getBlockBlobClient(name).exists();
  /** A blob created under exactly this name: a raw request, whose path no URL parser normalises. */
  const plant = (encodedName: string) =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: az.port,
          method: 'PUT',
          path: `/${az.accountName}/shared/${encodedName}?${az.sas('shared', 'acw')}`,
          headers: { 'x-ms-blob-type': 'BlockBlob', 'content-length': 1 },
        },
        (res) => {
          res.resume();
          res.statusCode === 201 ? resolve() : reject(new Error(`PUT ${encodedName}: ${res.statusCode}`));
        },
      );
      req.on('error', reject);
      req.end('x');
    });

  beforeAll(async () => {
    az = await startAzurite();
    await az.createContainer('shared');
    target = new BlobTarget(parseShareLocation(az.url('shared', 'site-a')) as BlobLocation, { accountKey: az.accountKey });
  }, 60_000);
  afterAll(async () => {
    await az?.stop();
  });

  it('deleting a folder removes nothing outside it', async () => {
    const other = az.container('shared');
    await other.getBlockBlobClient('site-b/AzsRepository/config.xml').upload('theirs', 6);
    await other.getBlockBlobClient('site-a/keep.txt').upload('keep', 4);
    await target.write('backups/old/data', Readable.from([Buffer.from('old')]));
    await plant('site-a/backups/old/%2E%2E/%2E%2E/%2E%2E/site-b/AzsRepository/config.xml');
    await plant('site-a/backups/old/%2E%2E/%2E/keep.txt');

    await target.delete('backups/old').catch(() => undefined);

    expect(await exists('site-b/AzsRepository/config.xml')).toBe(true);
    expect(await exists('site-a/keep.txt')).toBe(true);
    expect(await exists('site-a/backups/old/data')).toBe(false);
  });

  it('renaming a folder moves nothing from or to outside it', async () => {
    await az.container('shared').getBlockBlobClient('site-a/kept-too.txt').upload('keep', 4);
    await target.write('moving/a/data', Readable.from([Buffer.from('a')]));
    await plant('site-a/moving/a/%2E%2E/%2E%2E/kept-too.txt');

    await target.rename('moving/a', 'moved/deeper/b').catch(() => undefined);

    expect(await exists('site-a/kept-too.txt')).toBe(true);
    expect(await exists('site-a/moved/kept-too.txt')).toBe(false);
  });

  it('lists no entry it could not address', async () => {
    await plant('site-a/listed/%2E%2E/x');
    await target.write('listed/fine', Readable.from([Buffer.from('f')]));
    expect((await target.list('listed')).map((e) => e.name)).toEqual(['fine']);
    expect((await target.listTree('listed')).map((e) => e.path)).toEqual(['fine']);
  });
});
