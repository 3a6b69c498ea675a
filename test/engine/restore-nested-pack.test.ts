import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSymmetricKey, symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import { runRestore } from '../../src/engine/restore.js';
import { silentProgress } from '../../src/progress.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { fingerprint, makeDrill, type Drill } from '../support/cli.js';
import type { DecryptWith } from '../../src/crypto/recipient.js';
import { openBackup } from '../../src/engine/open-backup.js';
import { openRoleStream } from '../../src/pipeline/role-stream.js';
import { readCatalogFrom, type Catalog } from '../../src/repository/catalog.js';
import { pipeline, Readable } from 'node:stream';

/**
 * Roles whose folders nest restore one after the other, behind a check of every role first
 * (restore.ts), so that a damaged later role does not leave an earlier one restored. In a format 3
 * backup that check once read only the catalogs: a share writer who damaged (or deleted) a pack
 * that only the later role needs let the earlier role replace its destination (and with it the
 * later role's folder inside it) before the restore failed. And what the check read must be what
 * is restored, even when the share changes in between.
 */

let d: Drill;
let outer: string;
let inner: string;
let name: string;
let material: DecryptWith;
/** The outer folder (inner one included) as backed up. */
let backedUp: string;
/** A blob (pack and offset) that only the inner role's catalog lists. */
let caOnly: { pack: string; offset: number };

/** Each role's catalog, opened as a restore opens it. */
async function catalogsOf(backup: string): Promise<Map<string, Catalog>> {
  const target = new LocalFolderTarget(d.share);
  const { info, entry, dataKey } = await openBackup(target, backup, material);
  const out = new Map<string, Catalog>();
  for (const role of info.roles) {
    const file = role.files[0]!;
    const opening = openRoleStream({ dataKey: dataKey!, backupName: entry.name, roleName: role.definition.name, fileName: file.name });
    const plain = pipeline(await target.read(`${entry.folder}/${file.name}`), opening, () => {});
    out.set(role.definition.name, await readCatalogFrom(file.name, plain));
  }
  return out;
}

const packFile = (hash: string): string => path.join(d.share, 'AzsRepository', 'packs', hash.slice(0, 2), `${hash}.pack`);

beforeAll(async () => {
  d = await makeDrill({ roles: false });
  outer = path.join(d.root, 'etc-azs');
  inner = path.join(outer, 'ca');
  await fs.mkdir(inner, { recursive: true });
  await fs.writeFile(path.join(outer, 'settings.json'), '{"a":1}');
  await fs.writeFile(path.join(inner, 'root.pem'), 'certificate');
  await d.register('Configuration', ['-Provider', 'directory', '-Path', outer, '-RestoreOrder', '1']);
  await d.register('CA', ['-Provider', 'directory', '-Path', inner, '-RestoreOrder', '2']);
  name = (await d.backup()).Name as string;
  backedUp = fingerprint(outer);
  const key = parseSymmetricKey(d.key!);
  material = { kind: 'Key', keyId: symmetricKeyId(key), key };
  const catalogs = await catalogsOf(name);
  const outerBlobs = new Set(catalogs.get('Configuration')!.chunks.map((c) => `${c.pack}@${c.offset}`));
  const only = catalogs.get('CA')!.chunks.find((c) => !outerBlobs.has(`${c.pack}@${c.offset}`))!;
  caOnly = { pack: only.pack, offset: only.offset };
}, 180_000);
afterAll(async () => d?.cleanup());

describe('a format 3 restore of nested roles whose share changes after the check', () => {
  it('restores what the check read', async () => {
    await fs.writeFile(path.join(outer, 'settings.json'), '{"a":2,"current":true}');
    const reads = new Map<string, number>();
    const share = new LocalFolderTarget(d.share);
    // Every pack read a second time comes back with one byte changed.
    const changing = new Proxy(share, {
      get(t, prop, receiver) {
        if (prop !== 'read') {
          const v = Reflect.get(t, prop, receiver) as unknown;
          return typeof v === 'function' ? v.bind(t) : v;
        }
        return async (p: string) => {
          reads.set(p, (reads.get(p) ?? 0) + 1);
          if (reads.get(p)! < 2 || !p.endsWith('.pack')) return t.read(p);
          const bytes = await fs.readFile(path.join(d.share, p));
          bytes[bytes.length - 40]! ^= 0x01;
          return Readable.from([bytes]);
        };
      },
    });
    const outcome = await runRestore({ target: changing, name, material, progress: silentProgress });
    expect(outcome.error).toBeUndefined();
    expect(outcome.results.map((r) => [r.RoleName, r.Status])).toEqual([
      ['Configuration', 'Succeeded'],
      ['CA', 'Succeeded'],
    ]);
    expect(fingerprint(outer)).toBe(backedUp);
    expect([...reads].filter(([p, n]) => p.endsWith('.pack') && n > 1)).toEqual([]);
  });
});

describe('a format 3 restore of nested roles whose later role has a damaged pack', () => {
  it('leaves every destination as it was', async () => {
    expect(caOnly).toBeDefined();
    // The operator's current data, changed since the backup.
    await fs.writeFile(path.join(outer, 'settings.json'), '{"a":2,"current":true}');
    await fs.writeFile(path.join(inner, 'root.pem'), 'the current certificate');
    const before = fingerprint(outer);
    // The share writer (or plain damage) changes one byte of a blob that only the inner role needs;
    // the test finds one with the key, an attacker by trying blobs or simply the last one written.
    const file = packFile(caOnly.pack);
    const bytes = await fs.readFile(file);
    bytes[caOnly.offset + 20]! ^= 0x01;
    await fs.writeFile(file, bytes);
    // Refused up front (thrown) or reported (outcome.error): either way, nothing went into place.
    const outcome = await runRestore({ target: new LocalFolderTarget(d.share), name, material, progress: silentProgress }).catch(
      (error: unknown) => ({ error, results: [] }),
    );
    expect(outcome.error).toMatchObject({ errorId: 'ChunkNotAuthentic' });
    expect(outcome.results.map((r) => [r.RoleName, r.Status])).not.toContainEqual(['Configuration', 'Succeeded']);
    expect(fingerprint(outer)).toBe(before);
  });
});
