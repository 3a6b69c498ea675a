import { listShare } from '../../src/catalog/share-catalog.js';
import type { DecryptWith } from '../../src/crypto/recipient.js';
import { parseSymmetricKey, symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/target.js';
import type { CliResult, Drill } from './cli.js';

/**
 * `target`, with `action` run (once, awaited) just before the first call of `method` whose first
 * argument `when` accepts: how a test lands another machine's command (a prune, a re-wrap) at
 * exactly the moment of this machine's command it means to race.
 */
export function actingBefore<M extends 'read' | 'rename' | 'write' | 'delete' | 'list' | 'listTree'>(
  target: Target,
  method: M,
  when: (first: string) => boolean,
  action: () => Promise<unknown>,
): Target {
  let acted = false;
  return new Proxy(target, {
    get(t, prop) {
      const value = Reflect.get(t, prop, t);
      if (prop !== method) return typeof value === 'function' ? value.bind(t) : value;
      return async (first: string, ...rest: unknown[]) => {
        if (!acted && when(first)) {
          acted = true;
          await action();
        }
        return (value as (...args: unknown[]) => unknown).apply(t, [first, ...rest]);
      };
    },
  });
}

/**
 * Another machine's prune landed at this one's first read of a pack, on a drill whose oldest backup
 * is expired and alone in needing its pack (shareWithCollectablePack): the share as this machine's
 * command sees it, the expired backup's name, the key-mode material, and the prune's outcome once
 * it ran (check it is the one expected: one backup and one pack removed).
 */
export async function pruneAtFirstPackRead(d: Drill): Promise<{
  target: Target;
  expired: string;
  material: DecryptWith;
  pruned(): CliResult;
}> {
  const share = new LocalFolderTarget(d.share);
  const expired = (await listShare(share)).backups.at(-1)!.name;
  let outcome: CliResult | undefined;
  const target = actingBefore(
    share,
    'read',
    (p) => p.startsWith('AzsRepository/packs/'),
    async () => {
      outcome = await d.cli(['Invoke-BackupPrune']);
    },
  );
  const key = parseSymmetricKey(d.key!);
  return {
    target,
    expired,
    material: { kind: 'Key', keyId: symmetricKeyId(key), key },
    pruned: () => {
      if (!outcome) throw new Error('the prune never ran: no pack was read');
      return outcome;
    },
  };
}
