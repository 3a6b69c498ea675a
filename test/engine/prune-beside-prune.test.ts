import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listShare, removeBackup } from '../../src/catalog/share-catalog.js';
import { runPrune } from '../../src/engine/prune.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/target.js';
import { makeDrill, type Drill } from '../support/cli.js';
import { redate } from '../support/redate.js';

const DAY = 86_400_000;

/**
 * Two machines on one share (a redeployed host beside the old one, each pruning after its scheduled
 * backups) prune at once, and both remove the same expired backup. The one that came second found
 * the backup gone as it renamed it aside, and failed the whole prune as TargetObjectNotFound (exit
 * 10, 'Check the name; list the backups'), leaving the rest of the retention and the repository
 * undone; a scheduler tick failed the same way after its backup.
 *
 * The other machine's removal lands exactly there: a Target around the share removes the backup,
 * as that prune does, just before this prune renames it aside.
 */

describe('Invoke-BackupPrune beside a prune on another machine', () => {
  let d: Drill;
  let expired: string;
  let kept: string;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'key', roles: false, retentionDays: 7 });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    expired = (await d.backup()).Name;
    kept = (await d.backup()).Name;
    await redate(d, expired, new Date(Date.now() - 30 * DAY));
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('goes on when the other removed an expired backup first, and does not count it as its own', async () => {
    const share = new LocalFolderTarget(d.share);
    const entry = (await listShare(share)).backups.find((b) => b.name === expired)!;
    const beside: Target = new Proxy(share, {
      get(t, prop) {
        const value = Reflect.get(t, prop, t);
        if (prop !== 'rename') return typeof value === 'function' ? value.bind(t) : value;
        return async (from: string, ...rest: unknown[]) => {
          if (from === entry.folder) await removeBackup(t, entry);
          return (value as Target['rename']).apply(t, [from, ...rest] as Parameters<Target['rename']>);
        };
      },
    });
    const record = await runPrune(beside, { retentionPeriodInDays: 7, dryRun: false, ownBackups: new Set() });
    expect(record.BackupsRemoved).toBe(0);
    expect(record.BytesFreed).toBe(0);
    expect((await listShare(share)).backups.map((b) => b.name)).toEqual([kept]);
  });
});
