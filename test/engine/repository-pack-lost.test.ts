import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, makeDrill, type Drill } from '../support/cli.js';

/**
 * A pack the index names can leave the share without a prune: damage, a restore of the file
 * server from an older snapshot, someone cleaning by hand. Backups used to dedup against its
 * chunks, then find the pack gone at commit and fail (RepositoryPackMissing), every one of them,
 * since nothing took the pack out of the index; the advice to run the backup again did not help.
 * Now a backup leaves out the index entries of packs that are not on the share, stores those
 * chunks anew and says which packs are missing.
 */

const MiB = 1 << 20;

async function packsOf(share: string): Promise<{ file: string; size: number }[]> {
  const root = path.join(share, 'AzsRepository', 'packs');
  const found: { file: string; size: number }[] = [];
  for (const e of await fs.readdir(root, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !e.name.endsWith('.pack')) continue;
    const file = path.join(e.parentPath, e.name);
    found.push({ file, size: (await fs.stat(file)).size });
  }
  return found.sort((a, b) => b.size - a.size);
}

describe('a repository that lost a pack the index names', () => {
  let d: Drill;
  let files: string;
  let lost: string;
  let lostBytes: number;

  beforeAll(async () => {
    d = await makeDrill({ bigFileBytes: 6 * MiB });
    files = fingerprint(d.files);
    await d.backup();
    // The largest pack: the big file's chunks, which every later backup of the same data needs.
    ({ file: lost, size: lostBytes } = (await packsOf(d.share))[0]!);
    await fs.rm(lost);
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('backs up again, storing those chunks anew, and says which pack is missing', async () => {
    const r = expectOk(await d.cli(['Start-InfrastructureBackup']));
    expect(r.json.Status).toBe('Succeeded');
    expect(r.stderr).toContain(`1 pack the repository's index names is not on the share (${path.basename(lost, '.pack')})`);
    // What the lost pack held is stored again (the random big file does not compress).
    expect(r.json.Size).toBeGreaterThan(lostBytes * 0.9);
    // It restores whole on a fresh machine.
    await fs.rm(d.files, { recursive: true, force: true });
    const { args, stdin } = d.decryptArgs();
    const restored = expectOk(
      await d.cli(['Restore-AzsBackup', '-Name', r.json.Name, '-Path', d.share, ...args], {
        stdin,
        env: { AZSBACKUP_HOME: path.join(d.root, 'fresh') },
      }),
    );
    expect(restored.errors).toEqual([]);
    expect(fingerprint(d.files)).toBe(files);
  });

  it('and the next backup finds them where that one stored them', async () => {
    const next = expectOk(await d.cli(['Start-InfrastructureBackup']));
    expect(next.json.Status).toBe('Succeeded');
    expect(next.json.Size).toBeLessThan(MiB);
  });
});
