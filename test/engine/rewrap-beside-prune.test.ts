import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listShare, removeBackup } from '../../src/catalog/share-catalog.js';
import { rewrapJob } from '../../src/engine/rewrap.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/target.js';
import { expectOk, makeDrill, type Drill } from '../support/cli.js';

/**
 * Update-BackupEncryption reads a backup's BackupInfo.xml, then writes it back re-wrapped. A prune
 * on another machine (which the job lock of this one does not hold off) that removed the backup in
 * between had its work undone: the write made the backup's folder again, holding BackupInfo.xml
 * and nothing else, and the share listed a "backup" without its catalogs. A rewrite now only
 * replaces a BackupInfo.xml that is there.
 *
 * The prune lands exactly there: the share is a local folder seen through a Target that removes
 * the backup, as a prune does, just before the re-wrapped BackupInfo.xml is written.
 */

describe('Update-BackupEncryption beside a prune on another machine', () => {
  let d: Drill;
  let pruned: { Name: string };
  let kept: { Name: string };
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'key', roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    pruned = await d.backup();
    kept = await d.backup();
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('never brings back a backup removed while it was re-wrapped', async () => {
    const share = new LocalFolderTarget(d.share);
    const folder = path
      .relative(d.share, await d.backupFolder(pruned.Name))
      .split(path.sep)
      .join('/');
    const entry = (await listShare(share)).backups.find((b) => b.name === pruned.Name)!;
    const beside: Target = new Proxy(share, {
      get(t, prop) {
        const value = Reflect.get(t, prop, t);
        if (prop !== 'write') return typeof value === 'function' ? value.bind(t) : value;
        return async (p: string, ...rest: unknown[]) => {
          if (p === `${folder}/BackupInfo.xml`) await removeBackup(t, entry);
          return (value as Target['write']).apply(t, [p, ...rest] as Parameters<Target['write']>);
        };
      },
    });
    const made = expectOk(await d.cli(['New-EncryptionKey'])).json;
    const outcome = await rewrapJob({
      home: d.home,
      target: beside,
      sharePath: d.share,
      oldMaterial: { kind: 'Key', keyId: d.keyId!, key: Buffer.from(d.key!, 'base64') },
      recipients: [{ kind: 'Key', keyId: made.KeyId, key: Buffer.from(made.Key, 'base64') }],
      confirm: async () => true,
    });

    const listed = expectOk(await d.cli(['Get-InfrastructureBackup'])).json;
    expect([listed].flat().map((b: { Name: string; Status: string }) => [b.Name, b.Status])).toEqual([[kept.Name, 'Succeeded']]);
    await expect(fs.stat(path.join(d.share, folder))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await listShare(share)).backups.map((b) => b.name)).toEqual([kept.Name]);
    expect(outcome.updated.map((r) => r.Name)).toEqual([kept.Name]);
  });
});
