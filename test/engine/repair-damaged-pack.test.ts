import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { dbRows, expectOk, fingerprint, freshHome, makeDrill, runCli, sha256, type Drill } from '../support/cli.js';

/**
 * A pack that rotted on the share (one byte of a blob changed: it no longer hashes to its name,
 * a chunk in it no longer authenticates) was reported by Test-BackupRepository, and -Repair, which
 * the operator runs next and which leaves damaged packs out of the index it writes, did nothing:
 * it rebuilt the index only for index problems, so the index went on placing the damaged chunks
 * in that pack. The next backup of the same data stored none of them again, said Succeeded, and
 * could not be restored: the operator's fresh backup after the damage needed the damaged pack.
 * The repair now also takes the entries of damaged packs out of the index, so the next backup
 * stores those chunks anew; and it deletes nothing (the backups that need the pack stay, damaged).
 */

const layout = new RepositoryLayout();

describe('Test-BackupRepository -Repair on a share with a damaged pack', () => {
  let d: Drill;
  let first: any;
  let packs: string[];
  beforeAll(async () => {
    // 40 MiB of random bytes: more than one 32 MiB pack holds, whichever packers (the threads, or
    // the main thread while they start) take the jobs; 3 MB fitted one pack when one packer took all.
    d = await makeDrill({ bigFileBytes: 40 * 1024 * 1024 });
    first = await d.backup();
    const xml = await fs.readFile(path.join(await d.backupFolder(first.Name), 'BackupInfo.xml'), 'utf8');
    packs = [...xml.matchAll(/<Pack>([0-9a-f]{64})<\/Pack>/g)].map((m) => m[1]!);
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('takes the damaged pack out of the index: the next backup stores its chunks anew and restores', async () => {
    // The largest pack rots in its middle (a blob: the random data dominate it); the others stay sound.
    const sizes = await Promise.all(packs.map(async (p) => (await fs.stat(path.join(d.share, layout.packPath(p)))).size));
    const rotten = packs[sizes.indexOf(Math.max(...sizes))]!;
    expect(packs.length).toBeGreaterThan(1);
    const file = path.join(d.share, layout.packPath(rotten));
    const bytes = await fs.readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x5a;
    await fs.writeFile(file, bytes);
    const found = await d.cli(['Test-BackupRepository']);
    expect(found.code, found.stderr).toBe(12);
    expect(found.json.PacksDamaged).toBe(1);

    const repaired = await d.cli(['Test-BackupRepository', '-Repair']);
    // The packs are still damaged (exit 12), and said so; the index entries placing chunks in them are repaired.
    expect(repaired.code, repaired.stderr).toBe(12);
    // Nothing a committed backup needs was deleted or rewritten: the damaged packs are there as they were.
    expect(sha256(await fs.readFile(file))).toBe(sha256(bytes));
    for (const pack of packs) await fs.access(path.join(d.share, layout.packPath(pack)));

    // The same data backed up again: the chunks the damaged packs held are stored anew.
    const expected = `${fingerprint(d.files)}\nDB ${sha256(JSON.stringify(dbRows(d.db)))}`;
    const next = await d.backup();
    const { args, stdin } = d.decryptArgs();
    expectOk(await runCli(await freshHome(d), ['Test-InfrastructureBackup', '-Name', next.Name, ...args, '-Path', d.share], { stdin }));
    await fs.writeFile(path.join(d.files, 'cloud.json'), 'changed after the backup');
    const restored = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', next.Name, '-Path', d.share, ...args], { stdin });
    expect(restored.code, restored.stderr).toBe(0);
    expect(`${fingerprint(d.files)}\nDB ${sha256(JSON.stringify(dbRows(d.db)))}`).toBe(expected);

    // What the repair said it did: the entries in the damaged packs repaired, the packs still damaged.
    const kinds = repaired.json.Problems.map((p: any) => `${p.Severity} ${p.Kind}`);
    expect(kinds).toEqual(expect.arrayContaining(['Error PackDamaged', 'Repaired IndexEntryInDamagedPack']));
    expect(repaired.json.IndexRebuilt).toMatch(/^[0-9a-f]{64}$/);
    const fixed = await d.cli(['Test-BackupRepository']);
    expect(fixed.json.Problems.map((p: any) => p.Kind)).not.toContain('IndexEntryInDamagedPack');
  }, 240_000);
});
