/**
 * A copy the service finishes later. Azure may answer a Copy Blob with x-ms-copy-status: pending
 * and finish it in the background; the blob target's rename (how every pack reaches its final name)
 * then waited for it with the SDK's poller, which takes no abort signal: its status requests were
 * outside the retry policy, so a storage endpoint that stopped answering then held the rename, the
 * backup and the job lock for good, never failing as ShareConnectivity.
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobTarget } from '../../src/targets/blob.js';
import { parseShareLocation, type BlobLocation } from '../../src/targets/location.js';
import { startAzurite, type AzuriteServer } from '../support/azurite.js';
import { startBlobProxy, type BlobProxy } from '../support/blob-proxy.js';

describe('a blob copy answered as pending', () => {
  let az: AzuriteServer;
  let proxy: BlobProxy;
  let target: BlobTarget;
  /** The next copy is answered as pending; with `thenHang`, nothing about its destination is answered after. */
  const copyAnsweredPending = (thenHang?: string) =>
    proxy.arm({
      when: (req) => req.method === 'PUT' && req.headers['x-ms-copy-source'] !== undefined,
      alterAnswer: (headers) => {
        headers['x-ms-copy-status'] = 'pending';
        if (thenHang) proxy.hang((req) => req.url!.includes(thenHang));
      },
    });

  beforeAll(async () => {
    az = await startAzurite();
    await az.createContainer('shared');
    proxy = await startBlobProxy(az);
    target = new BlobTarget(
      parseShareLocation(proxy.url('shared', 'site-a')) as BlobLocation,
      { accountKey: az.accountKey },
      { retry: { tries: 2, baseDelayMs: 50, maxDelayMs: 200, tryTimeoutMs: 1000 } },
    );
  });
  afterAll(async () => {
    await proxy?.close();
    await az?.stop();
  });

  it('is waited for until the copy is done, then the rename completes', async () => {
    await target.write('pending/a', Readable.from([Buffer.from('pack bytes')]));
    copyAnsweredPending();
    await target.rename('pending/a', 'done/a');
    expect(proxy.armed()).toBe(false);
    expect(await target.stat('pending/a')).toBeUndefined();
    expect((await target.stat('done/a'))?.size).toBe(10);
  });

  it('fails within the retry policy as ShareConnectivity when the endpoint then stops answering', async () => {
    await target.write('pending/b', Readable.from([Buffer.from('pack bytes')]));
    copyAnsweredPending('/done/b');
    const outcome = await Promise.race([
      target.rename('pending/b', 'done/b').then(
        () => 'renamed',
        (e: unknown) => e,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting after 30 s'), 30_000)),
    ]);
    proxy.hang(undefined);
    expect(outcome).toMatchObject({ alertType: 'ShareConnectivity' });
    // Nothing was deleted: the source is still there to try again.
    expect((await target.stat('pending/b'))?.size).toBe(10);
  });
});
