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
 * Audit: a provider that cannot stage (command, postgres) gets "a verified file (a first full
 * pass)" (restore.ts): the role is read from the share and authenticated whole, then read from the
 * share AGAIN and streamed into the program. Nothing ties the second read to the first, so a share
 * writer who changes the data between the two passes (here: one byte of a pack, as soon as the
 * check has read it) has the import program receive and apply the first part of the role before
 * the restore fails: the operator's data is destroyed by a restore that fails, which the first
 * pass exists to prevent.
 */

let d: Drill;
let data: string;
let name: string;
let material: DecryptWith;

/** The share, whose packs the attacker damages once they have been read once. */
function swappingShare(root: string): Target {
  const inner = new LocalFolderTarget(root);
  const reads = new Map<string, number>();
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
  await fs.writeFile(data, randomBytes(3 * 1024 * 1024));
  await d.registerCommand('App', ['cat', data], ['dd', `of=${data}`, 'status=none']);
  name = (await d.backup()).Name as string;
  const key = parseSymmetricKey(d.key!);
  material = { kind: 'Key', keyId: symmetricKeyId(key), key };
}, 180_000);
afterAll(async () => d?.cleanup());

describe('a restore into a program that cannot stage', () => {
  it('leaves the destination as it was when the data changes on the share between the check and the import', async () => {
    await fs.writeFile(data, 'the operator’s current data, changed since the backup\n');
    const before = sha256(await fs.readFile(data));
    const outcome = await runRestore({ target: swappingShare(d.share), name, material, progress: silentProgress }).catch(
      (error: unknown) => ({ error, results: [] }),
    );
    expect(outcome.error).toBeDefined();
    expect(sha256(await fs.readFile(data))).toBe(before);
  });
});
