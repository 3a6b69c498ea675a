import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createProvider } from '../../src/providers/index.js';
import { describeWithAndWithoutAddons } from '../support/native-switch.js';
import { exportAll } from '../support/provider-fixtures.js';

/**
 * A name on Linux is bytes, not text: a folder copied from an old Latin-1 system keeps its
 * 'r\xe9sum\xe9'. The backup archived such names as they are, and GNU tar extracted them so; but
 * what the restore did itself afterwards (folders' and links' owners, modes and times, FIFOs
 * removed) went by the names read as UTF-8, where every odd byte became U+FFFD: ENOENT, and a role
 * whose backup said Succeeded could never be restored. Two names that read alike could also be
 * taken for one by the entry guard.
 */

let tmp: string;
let src: string;
const b = (...parts: (string | Buffer)[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

/** Every entry below `root`: its name's bytes (hex), type, mode, owner and mtime to the nanosecond. */
function manifest(root: string): string {
  const out = execFileSync('find', ['.', '-printf', '%p\\0%y %m %U %G %s %T@\\n'], { cwd: root });
  return out
    .toString('latin1')
    .split('\n')
    .map((line) => {
      const [name = '', rest = ''] = line.split('\0');
      return `${Buffer.from(name, 'latin1').toString('hex')} ${rest}`;
    })
    .sort()
    .join('\n');
}

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-names-'));
  src = path.join(tmp, 'data');
  await fs.mkdir(src);
  const root = Buffer.from(src);
  // Two folders whose names read alike as UTF-8 (each odd byte is U+FFFD), with files and a link.
  for (const odd of [Buffer.from([0xe9]), Buffer.from([0xe8])]) {
    const folder = b(root, '/r', odd, 'sum', odd);
    await fs.mkdir(folder);
    await fs.writeFile(b(folder, '/cv.txt'), randomBytes(100));
    await fs.symlink('cv.txt', b(folder, '/l', odd));
    await fs.lutimes(b(folder, '/l', odd), 1600000000.25, 1600000000.25);
  }
  await fs.writeFile(b(root, '/big-', Buffer.from([0xff]), '.bin'), randomBytes(2 * 1024 * 1024));
  await fs.chmod(b(root, '/r', Buffer.from([0xe9]), 'sum', Buffer.from([0xe9])), 0o750);
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describeWithAndWithoutAddons('directory roles with names that are not UTF-8', () => {
  it('are restored under the same bytes, with every folder, link and file as it was', async () => {
    const before = manifest(src);
    const role = await createProvider({ name: 'Legacy', provider: 'directory', restoreOrder: 1, path: src });
    const bytes = await exportAll(role);
    const dest = path.join(tmp, 'restored');
    await role.import(Readable.from([bytes]), { destination: dest });
    expect(manifest(dest)).toBe(before);
  });
});
