import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { createRepository, readRepositoryConfig } from '../../src/repository/repository-config.js';
import { deriveRepositoryKeys } from '../../src/repository/keys.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { useNativeAddons } from '../support/native-switch.js';

/**
 * The Target interface promises that rename never replaces an existing entry, and
 * createRepository relies on it ("if another writer created a repository meanwhile, theirs
 * stays"). The local folder target checked that the destination did not exist and then renamed,
 * several awaits apart: two writers that both passed the check both renamed, and the second
 * silently replaced the first one's file. For config.xml that is two machines (or two
 * AZSBACKUP_HOMEs) making the first backup into one new mounted share at once: the backups of the
 * one whose config.xml was replaced named a repository key that no longer existed anywhere. A file
 * now takes its name by link(), which refuses an existing name in one step.
 *
 * Two writers on the real file system, as two processes would be, started together.
 */

const roots: string[] = [];
afterAll(async () => {
  for (const r of roots) await fs.rm(r, { recursive: true, force: true });
});

describe('two writers creating the repository at once on a local or mounted folder', () => {
  it('only one is told it created it, and config.xml is that one', async () => {
    const root = await fs.mkdtemp(path.join(tmpdir(), 'azs-audit-create-'));
    roots.push(root);
    const layout = new RepositoryLayout();
    const key = randomBytes(32);
    const recipient = { kind: 'Key' as const, keyId: symmetricKeyId(key), key };
    const [a, b] = await Promise.all([
      createRepository(new LocalFolderTarget(root), layout, [recipient]),
      createRepository(new LocalFolderTarget(root), layout, [recipient]),
    ]);
    const onShare = await readRepositoryConfig(new LocalFolderTarget(root), layout);
    const creators = [a, b].filter((r) => r.master !== undefined);
    expect(creators).toHaveLength(1);
    expect(onShare!.id).toBe(creators[0]!.config.id);
    expect(deriveRepositoryKeys(creators[0]!.master!).publicKey.equals(onShare!.publicKey)).toBe(true);
  });

  it('a plain rename of two files to one name: the second is refused, never replacing the first', async () => {
    const root = await fs.mkdtemp(path.join(tmpdir(), 'azs-audit-rename-'));
    roots.push(root);
    const t = new LocalFolderTarget(root);
    await t.write('one', Readable.from([Buffer.from('one')]));
    await t.write('two', Readable.from([Buffer.from('two')]));
    const results = await Promise.allSettled([t.rename('one', 'name'), t.rename('two', 'name')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const kept = await fs.readFile(path.join(root, 'name'), 'utf8');
    // The one that was told it succeeded is the one under the name.
    expect(results[kept === 'one' ? 0 : 1]!.status).toBe('fulfilled');
  });
});

/**
 * Folders took their new name by a check and then rename(2), which replaces an empty folder in
 * its way: two writers moving folders to one name both succeeded, the second one's folder
 * replacing the first one's; with files in them, the second got a raw ENOTEMPTY instead of the
 * interface's "exists". A folder now takes its name with renameat2(RENAME_NOREPLACE), which
 * refuses an existing name in one step; without the addon (or on a file system without the flag)
 * only a folder with files in it is refused in one step, by rename(2) itself.
 */
async function raceFoldersToOneName(filled: boolean): Promise<void> {
  const root = await fs.mkdtemp(path.join(tmpdir(), 'azs-rename-folder-'));
  roots.push(root);
  const t = new LocalFolderTarget(root);
  for (const name of ['one', 'two']) {
    await t.mkdir(name);
    if (filled) await t.write(`${name}/inside`, Readable.from([Buffer.from(name)]));
  }
  const results = await Promise.allSettled([t.rename('one', 'name'), t.rename('two', 'name')]);
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  expect(refused.reason.errorId).toBe('TargetObjectExists');
  // The loser's folder is still where it was, and the winner's is under the name.
  const winner = results[0]!.status === 'fulfilled' ? 'one' : 'two';
  expect((await fs.stat(path.join(root, winner === 'one' ? 'two' : 'one'))).isDirectory()).toBe(true);
  if (filled) expect(await fs.readFile(path.join(root, 'name', 'inside'), 'utf8')).toBe(winner);
}

describe('two writers moving folders to one name at once on a local folder', () => {
  describe('with our addons', () => {
    useNativeAddons(true);
    it('empty folders: the second is refused, never replacing the first', () => raceFoldersToOneName(false));
    it('folders with files: the second is refused, never replacing the first', () => raceFoldersToOneName(true));
  });
  describe('without them (AZSBACKUP_NATIVE=off)', () => {
    useNativeAddons(false);
    it("folders with files: the second is refused with the interface's error", () => raceFoldersToOneName(true));
  });
});
