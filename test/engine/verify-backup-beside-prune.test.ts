import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyBackup } from '../../src/engine/verify.js';
import { silentProgress } from '../../src/progress.js';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';
import { rejected } from '../support/errors.js';
import { pruneAtFirstPackRead } from '../support/beside.js';
import { shareWithCollectablePack } from '../support/collectable.js';

/**
 * Test-InfrastructureBackup of a backup past the retention period (the one an operator means to
 * restore) on one machine, while the backup machine's scheduled prune removes it and the pack only
 * it needed: the check found the pack missing and called the backup damaged (IsValid false, exit
 * 12), where it had been pruned. A restore of it then said it does not exist.
 *
 * The prune lands exactly there: a Target around the share runs Invoke-BackupPrune on the backup
 * machine before the check reads its first pack.
 */

describe('Test-InfrastructureBackup beside a prune on another machine', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'key', roles: false, retentionDays: 7 });
    await shareWithCollectablePack(d);
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('says the backup was removed while it was checked, not that it is damaged', async () => {
    const { target: beside, expired, material, pruned } = await pruneAtFirstPackRead(d);
    const error = await rejected(verifyBackup(beside, expired, material, silentProgress));

    expect(expectOk(pruned(), 'Invoke-BackupPrune').json).toMatchObject({ BackupsRemoved: 1, PacksRemoved: 1 });
    expect(error.errorId).toBe('BackupNotFound');
    expect(error.message).toMatch(/removed from .* while it was being checked/);
  }, 120_000);
});
