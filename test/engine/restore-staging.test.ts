import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSymmetricKey, symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import type { DecryptWith } from '../../src/crypto/recipient.js';
import { runRestore } from '../../src/engine/restore.js';
import { silentProgress } from '../../src/progress.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/target.js';
import { dbRows, fingerprint, makeDrill, type Drill, fullCopyBackups } from '../support/cli.js';

/**
 * A restore of several roles stages every role before it changes any destination, so that a
 * damaged later role leaves the earlier ones as they were, and reads each role file that can be
 * staged from the share once (a share is often across a network).
 */

let d: Drill;
let backupName: string;
let material: DecryptWith;

/** The share, counting how often each file is read. */
function countingShare(root: string): { target: Target; reads: Map<string, number> } {
  const inner = new LocalFolderTarget(root);
  const reads = new Map<string, number>();
  const target = new Proxy(inner, {
    get(t, prop, receiver) {
      if (prop === 'read') {
        return (p: string) => {
          reads.set(path.basename(p), (reads.get(path.basename(p)) ?? 0) + 1);
          return t.read(p);
        };
      }
      const v = Reflect.get(t, prop, receiver) as unknown;
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
  return { target, reads };
}

async function destinations(): Promise<string> {
  const around = (await fs.readdir(path.dirname(d.files)))
    .filter((n) => !/-(wal|shm)$/.test(n))
    .sort()
    .join(' ');
  return `${around}\n${fingerprint(d.files)}\n${JSON.stringify(dbRows(d.db))}\n${fingerprint(d.tarred)}`;
}

// It counts and damages role files as full copies lay them out (format 2); the staging it tests is the same for format 3.
fullCopyBackups();
beforeAll(async () => {
  d = await makeDrill();
  backupName = (await d.backup()).Name as string;
  const key = parseSymmetricKey(d.key!);
  material = { kind: 'Key', keyId: symmetricKeyId(key), key };
});
afterAll(async () => d?.cleanup());

describe('a restore of several roles', () => {
  it('reads every role file from the share once: one it must stream is checked, then imported from the local copy', async () => {
    const expected = await destinations();
    await fs.rm(d.files, { recursive: true });
    await fs.writeFile(path.join(d.tarred, 'sub-1.json'), 'changed');
    const { target, reads } = countingShare(d.share);
    const outcome = await runRestore({ target, name: backupName, material, progress: silentProgress });
    expect(outcome.error).toBeUndefined();
    expect(outcome.results.map((r) => [r.RoleName, r.Status])).toEqual([
      ['Files', 'Succeeded'],
      ['Db', 'Succeeded'],
      ['Tarred', 'Succeeded'],
    ]);
    expect(Object.fromEntries(reads)).toMatchObject({ 'Files.azsrole': 1, 'Db.azsrole': 1, 'Tarred.azsrole': 1 });
    expect(await destinations()).toBe(expected);
  });

  it('changes no destination when a later role fails to authenticate, and leaves no staging behind', async () => {
    await fs.writeFile(path.join(d.files, 'cloud.json'), 'edited after the backup');
    const before = await destinations();
    // A copy of the share whose last role file (in restore order) has one byte changed.
    const share = path.join(d.root, 'share-damaged-tarred');
    await fs.cp(d.share, share, { recursive: true });
    const folder = path.join(share, path.relative(d.share, await d.backupFolder(backupName)));
    const file = path.join(folder, 'Tarred.azsrole');
    const bytes = await fs.readFile(file);
    bytes[bytes.length - 100]! ^= 0x01;
    await fs.writeFile(file, bytes);

    const outcome = await runRestore({ target: new LocalFolderTarget(share), name: backupName, material, progress: silentProgress });
    expect(outcome.error).toMatchObject({ errorId: 'ChunkAuthenticationFailed', exitCode: 12 });
    expect(outcome.results.map((r) => [r.RoleName, r.Status])).toEqual([
      ['Files', 'Skipped'],
      ['Db', 'Skipped'],
      ['Tarred', 'Failed'],
    ]);
    expect(await destinations()).toBe(before);
  });

  it('restores roles whose folders lie one inside the other one after the other, both intact', async () => {
    const n = await makeDrill({ roles: false });
    try {
      const outer = path.join(n.root, 'etc-azs');
      const inner = path.join(outer, 'ca');
      await fs.mkdir(inner, { recursive: true });
      await fs.writeFile(path.join(outer, 'settings.json'), '{"a":1}');
      await fs.writeFile(path.join(inner, 'root.pem'), 'certificate');
      await n.register('Configuration', ['-Provider', 'directory', '-Path', outer, '-RestoreOrder', '1']);
      await n.register('CA', ['-Provider', 'directory', '-Path', inner, '-RestoreOrder', '2']);
      const name = (await n.backup()).Name as string;
      const expected = fingerprint(outer);
      await fs.rm(outer, { recursive: true });
      const key = parseSymmetricKey(n.key!);
      const { target, reads } = countingShare(n.share);
      const outcome = await runRestore({
        target,
        name,
        material: { kind: 'Key', keyId: symmetricKeyId(key), key },
        progress: silentProgress,
      });
      expect(outcome.error).toBeUndefined();
      expect(outcome.results.map((r) => r.Status)).toEqual(['Succeeded', 'Succeeded']);
      expect(fingerprint(outer)).toBe(expected);
      // Checked first, then restored from the local copies the check made: each file read from the share once.
      expect(Object.fromEntries(reads)).toMatchObject({ 'Configuration.azsrole': 1, 'CA.azsrole': 1 });
      expect((await fs.readdir(n.root)).filter((e) => e.includes('azs-'))).toEqual([]);
    } finally {
      await n.cleanup();
    }
  });
});
