import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRestore } from '../../src/engine/restore.js';
import { silentProgress } from '../../src/progress.js';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';
import { pruneAtFirstPackRead } from '../support/beside.js';
import { shareWithCollectablePack } from '../support/collectable.js';

/**
 * A restore on one machine (the redeployed host, or an operator's test host) of a backup past the
 * retention period, while the backup machine's scheduled prune runs on the same share: the prune
 * removes the backup and the pack only it needed while the restore reads it. The restore failed
 * with PackDamaged, 'the pack file on the share was changed or cut short', sending the operator
 * to look for damage or tampering on the worst day, when the backup had simply been pruned.
 *
 * The prune lands exactly there: a Target around the share runs Invoke-BackupPrune on the backup
 * machine before the restore reads its first pack.
 */

describe('Restore-AzsBackup beside a prune on another machine', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'key', roles: false, retentionDays: 7 });
    await shareWithCollectablePack(d);
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('says the backup was removed while it was restored, not that the share damaged it', async () => {
    const { target: beside, expired, material, pruned } = await pruneAtFirstPackRead(d);
    const outcome = await runRestore({
      target: beside,
      name: expired,
      material,
      progress: silentProgress,
    });

    expect(expectOk(pruned(), 'Invoke-BackupPrune').json).toMatchObject({ BackupsRemoved: 1, PacksRemoved: 1 });
    expect(outcome.results.map((r) => r.Status)).toEqual(['Failed']);
    expect(outcome.error?.errorId).toBe('BackupNotFound');
    expect(outcome.error?.message).toMatch(/removed from .* while it was being restored/);
    expect(outcome.results[0]!.Error).toBe(outcome.error?.message);
  }, 120_000);
});
