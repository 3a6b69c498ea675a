import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spooledTarget } from '../../src/engine/spooled-target.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/target.js';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-spooled-'));
  await fs.mkdir(path.join(root, 'share'));
  for (const name of ['b', 'c']) await fs.writeFile(path.join(root, 'share', name), `the file ${name}`);
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

/** The share, where reading 'a' fails half way. */
function shareWhereAFails(): { target: Target; reads: string[] } {
  const inner = new LocalFolderTarget(path.join(root, 'share'));
  const reads: string[] = [];
  const target = new Proxy(inner, {
    get(t, key, receiver) {
      if (key !== 'read') {
        const v = Reflect.get(t, key, receiver) as unknown;
        return typeof v === 'function' ? v.bind(t) : v;
      }
      return async (p: string) => {
        reads.push(p);
        if (p !== 'a') return t.read(p);
        return Readable.from(
          (async function* () {
            yield Buffer.from('half of a');
            throw new Error('the share went away');
          })(),
        );
      };
    },
  });
  return { target, reads };
}

describe('a share read through local copies', () => {
  it('reads each file from the share once, and a copy that failed takes no other copy’s place', async () => {
    const { target, reads } = shareWhereAFails();
    const spool = spooledTarget(target, path.join(root, 'private'));
    try {
      const [a, b] = await Promise.allSettled([spool.target.read('a'), spool.target.read('b')]);
      expect(a.status).toBe('rejected');
      expect(b.status).toBe('fulfilled');
      expect(await text(await spool.target.read('c'))).toBe('the file c');
      expect(await text(await spool.target.read('b'))).toBe('the file b');
      expect(reads.filter((p) => p === 'b')).toEqual(['b']);
    } finally {
      await spool.discard();
    }
    expect(await fs.readdir(path.join(root, 'private'))).toEqual([]);
  });
});
