import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSymmetricKey, symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import type { DecryptWith } from '../../src/crypto/recipient.js';
import { runRestore } from '../../src/engine/restore.js';
import { silentProgress } from '../../src/progress.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/target.js';
import { makeDrill, sha256, type Drill } from '../support/cli.js';

/**
 * A provider that cannot stage (command, postgres) gets its role checked whole first, then streamed
 * into the program: the role is read twice. A share writer who changes the data between the two
 * reads (here: one byte of a pack, once it has been read once) would have the program receive and
 * apply the first part of the role before the restore failed, the operator's data destroyed by a
 * restore that fails. The second read comes from the local copies the first one made
 * (spooled-target.ts): the program gets what the check saw.
 */

let d: Drill;
let data: string;
let backedUp: string;
let name: string;
let material: DecryptWith;

/** The share, which the attacker changes: a pack read a second time has one byte flipped. */
function swappingShare(root: string, reads: Map<string, number>): Target {
  const inner = new LocalFolderTarget(root);
  return new Proxy(inner, {
    get(t, prop, receiver) {
      if (prop === 'read') {
        return async (p: string) => {
          const n = (reads.get(p) ?? 0) + 1;
          reads.set(p, n);
          if (n < 2 || !p.endsWith('.pack')) return t.read(p);
          const bytes = await fs.readFile(path.join(root, p));
          bytes[Math.floor(bytes.length * 0.75)]! ^= 0x01;
          return Readable.from([bytes]);
        };
      }
      const v = Reflect.get(t, prop, receiver) as unknown;
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

beforeAll(async () => {
  d = await makeDrill({ roles: false });
  data = path.join(d.root, 'app.bin');
  // Incompressible, several chunks (about 256 KiB each) in one pack.
  const bytes = randomBytes(3 * 1024 * 1024);
  backedUp = sha256(bytes);
  await fs.writeFile(data, bytes);
  await d.registerCommand('App', ['cat', data], ['dd', `of=${data}`, 'status=none']);
  name = (await d.backup()).Name as string;
  const key = parseSymmetricKey(d.key!);
  material = { kind: 'Key', keyId: symmetricKeyId(key), key };
}, 180_000);
afterAll(async () => d?.cleanup());

describe('a restore into a program that cannot stage', () => {
  it('imports what its check read, even when the share changes between the check and the import, and keeps no copy', async () => {
    await fs.writeFile(data, 'the operator’s current data, changed since the backup\n');
    const reads = new Map<string, number>();
    const privateDir = path.join(d.root, 'private-of-this-restore');
    const outcome = await runRestore({ target: swappingShare(d.share, reads), name, material, progress: silentProgress, privateDir });
    expect(outcome.error).toBeUndefined();
    expect(outcome.results.map((r) => r.Status)).toEqual(['Succeeded']);
    expect(sha256(await fs.readFile(data))).toBe(backedUp);
    // Every pack was read from the share once; the local copies are gone.
    const packs = [...reads].filter(([p]) => p.endsWith('.pack'));
    expect(packs.length).toBeGreaterThan(0);
    expect(packs.filter(([, n]) => n > 1)).toEqual([]);
    expect(await fs.readdir(privateDir)).toEqual([]);
  });

  it("changes nothing when the share's data is damaged before the check", async () => {
    await fs.writeFile(data, 'the operator’s current data\n');
    const before = sha256(await fs.readFile(data));
    const reads = new Map<string, number>();
    const damagedFromTheStart = swappingShare(d.share, reads);
    // Every pack counts as read once already: the first read the restore makes is damaged.
    for (const pack of await listPacks(d.share)) reads.set(pack, 1);
    const outcome = await runRestore({ target: damagedFromTheStart, name, material, progress: silentProgress });
    expect(outcome.error?.errorId).toBe('ChunkNotAuthentic');
    expect(sha256(await fs.readFile(data))).toBe(before);
  });
});

describe('a restore into a program whose local copies find no room', () => {
  let mnt: string;
  let mounted = false;
  afterAll(() => {
    if (mounted) execFileSync('umount', [mnt]);
  });

  it('fails before the program starts, saying where room is needed', async (ctx) => {
    mnt = path.join(d.root, 'small-home-private');
    await fs.mkdir(mnt);
    try {
      // 1 MiB: the role's 3 MiB of packs do not fit.
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'ignore' });
      mounted = true;
    } catch {
      ctx.skip('mounting a 1 MiB tmpfs is not possible here (needs root)');
    }
    await fs.writeFile(data, 'the operator’s current data\n');
    const before = sha256(await fs.readFile(data));
    const outcome = await runRestore({ target: new LocalFolderTarget(d.share), name, material, progress: silentProgress, privateDir: mnt });
    expect(outcome.error).toMatchObject({ errorId: 'RestoreCopyNoSpace', category: 'ResourceUnavailable' });
    expect(outcome.error?.message).toContain(mnt);
    expect(outcome.results.map((r) => r.Status)).toEqual(['Failed']);
    expect(sha256(await fs.readFile(data))).toBe(before);
    expect(await fs.readdir(mnt)).toEqual([]);
  });
});

/** The share's pack paths, as the restore reads them. */
async function listPacks(share: string): Promise<string[]> {
  const entries = await new LocalFolderTarget(share).listTree('');
  return entries.filter((e) => e.path.endsWith('.pack')).map((e) => e.path);
}
