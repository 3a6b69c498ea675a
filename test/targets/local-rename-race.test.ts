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
