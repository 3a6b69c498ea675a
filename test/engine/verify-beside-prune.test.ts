import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRepository } from '../../src/engine/verify-repository.js';
import { silentProgress } from '../../src/progress.js';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';
import { pruneAtFirstPackRead } from '../support/beside.js';
import { shareWithCollectablePack } from '../support/collectable.js';

/**
 * Test-BackupRepository on one machine (an operator's test host) while the backup machine's
 * scheduled prune runs on the same share. The check lists the backups and the packs, then reads
 * every pack, which takes hours on a large store: a prune meanwhile removes an expired backup and
 * the pack only it needed, and rewrites the index without that pack. The check then found the
 * pack missing and reported it as damage (PackMissing: 'cannot be restored without it', and
 * IndexEntryWithoutPack), IsValid false, exit 12, for a backup and index entries that were gone as
 * retention meant them to be.
 *
 * The prune lands exactly there: a Target around the share runs Invoke-BackupPrune on the backup
 * machine before the check reads its first pack.
 */

describe('Test-BackupRepository beside a prune on another machine', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'key', roles: false, retentionDays: 7 });
    await shareWithCollectablePack(d);
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('reports no damage for a backup and a pack the prune removed while it ran', async () => {
    const { target: beside, material, pruned } = await pruneAtFirstPackRead(d);
    const record = await checkRepository(beside, d.share, { material }, silentProgress);

    expect(expectOk(pruned(), 'Invoke-BackupPrune').json).toMatchObject({ BackupsRemoved: 1, PacksRemoved: 1 });
    expect(record.Problems.filter((p) => p.Severity === 'Error')).toEqual([]);
    expect(record.IsValid).toBe(true);
  }, 120_000);
});
