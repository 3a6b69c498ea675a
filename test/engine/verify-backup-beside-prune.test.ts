import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listShare } from '../../src/catalog/share-catalog.js';
import { parseSymmetricKey, symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import { verifyBackup } from '../../src/engine/verify.js';
import { silentProgress } from '../../src/progress.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';
import { rejected } from '../support/errors.js';
import { actingBefore } from '../support/beside.js';
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
    const share = new LocalFolderTarget(d.share);
    const expired = (await listShare(share)).backups.at(-1)!.name;
    let pruned: Awaited<ReturnType<Drill['cli']>> | undefined;
    const beside = actingBefore(
      share,
      'read',
      (p) => p.startsWith('AzsRepository/packs/'),
      async () => {
        pruned = await d.cli(['Invoke-BackupPrune']);
      },
    );
    const key = parseSymmetricKey(d.key!);
    const error = await rejected(verifyBackup(beside, expired, { kind: 'Key', keyId: symmetricKeyId(key), key }, silentProgress));

    expect(expectOk(pruned!, 'Invoke-BackupPrune').json).toMatchObject({ BackupsRemoved: 1, PacksRemoved: 1 });
    expect(error.errorId).toBe('BackupNotFound');
    expect(error.message).toMatch(/removed from .* while it was being checked/);
  }, 120_000);
});
