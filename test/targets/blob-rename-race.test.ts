import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { createRepository, readRepositoryConfig } from '../../src/repository/repository-config.js';
import { BlobTarget } from '../../src/targets/blob.js';
import { parseShareLocation, type BlobLocation } from '../../src/targets/location.js';
import { startAzurite, type AzuriteServer } from '../support/azurite.js';

/**
 * The blob container's side of local-rename-race.test.ts. Its rename (a copy, then the source
 * deleted) checked that the destination did not exist and then copied over it unconditionally, so
 * two writers that both passed the check both succeeded and the second replaced the first one's
 * blob: two first backups into one new container at once, one machine's repository config.xml (its
 * master key) replaced, its backups never restorable. The copy now goes only onto a name nobody
 * took (If-None-Match: *).
 */

describe('blob container: two writers renaming to one name at once', () => {
  let azurite: AzuriteServer;
  let n = 0;
  const target = async () => {
    const container = `race-${++n}`;
    await azurite.createContainer(container);
    const location = parseShareLocation(`${azurite.url(container)}`) as BlobLocation;
    return () => new BlobTarget(location, { accountKey: azurite.accountKey });
  };
  beforeAll(async () => {
    azurite = await startAzurite();
  }, 60_000);
  afterAll(async () => azurite?.stop());

  it('the second is refused, never replacing the first', async () => {
    const open = await target();
    const t = open();
    await t.write('one', Readable.from([Buffer.from('one')]));
    await t.write('two', Readable.from([Buffer.from('two')]));
    const results = await Promise.allSettled([open().rename('one', 'name'), open().rename('two', 'name')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('only one writer is told it created the repository, and config.xml is that one', async () => {
    const open = await target();
    const layout = new RepositoryLayout();
    const key = randomBytes(32);
    const recipient = { kind: 'Key' as const, keyId: symmetricKeyId(key), key };
    const made = await Promise.all([createRepository(open(), layout, [recipient]), createRepository(open(), layout, [recipient])]);
    const creators = made.filter((r) => r.master !== undefined);
    expect(creators).toHaveLength(1);
    expect((await readRepositoryConfig(open(), layout))!.id).toBe(creators[0]!.config.id);
  });
});
