import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProvider } from '../../src/providers/index.js';
import { aclTools } from '../support/acl.js';
import { canMount, mountTmpfs, unmount } from '../support/mounts.js';
import { exportAll } from '../support/provider-fixtures.js';

/**
 * A directory role keeps what a folder of keys and certificates is protected by beyond its modes:
 * POSIX ACLs (system.posix_acl_access, and a folder's system.posix_acl_default, which new files
 * inherit) and other extended attributes. Before, the archive held none of them: a CA folder whose
 * key a service account could read through an ACL came back without it, and the service failed
 * on the restored machine; a restore reported success all the same.
 */

/** Every extended attribute below `root`, the root's own included, as getfattr dumps them (values in base64). */
function attributes(root: string): string {
  return execFileSync('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'base64', '.'], { cwd: root, encoding: 'utf8' });
}

let tmp: string;
let src: string;

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-xattrs-'));
  src = path.join(tmp, 'pki');
  await fs.mkdir(path.join(src, 'private'), { recursive: true });
  await fs.writeFile(path.join(src, 'private', 'ca.key'), 'key\n', { mode: 0o600 });
  await fs.writeFile(path.join(src, 'ca.crt'), 'cert\n');
  await fs.symlink('ca.crt', path.join(src, 'current.crt'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe.skipIf(!aclTools)('directory roles and extended attributes', () => {
  it('a restore gives back the ACLs and extended attributes of every file and folder, the root included', async () => {
    execFileSync('setfacl', ['-m', 'u:nobody:r', path.join(src, 'private', 'ca.key')]);
    execFileSync('setfacl', ['-d', '-m', 'u:nobody:rx', path.join(src, 'private')]);
    execFileSync('setfacl', ['-m', 'g:nogroup:rx', src]);
    execFileSync('setfattr', ['-n', 'user.azs.note', '-v', 'issued 2026', path.join(src, 'ca.crt')]);
    execFileSync('setfattr', ['-n', 'user.azs.binary', '-v', '0x00ff0a3d', path.join(src, 'private')]);
    const before = attributes(src);
    expect(before).toContain('system.posix_acl_access');
    expect(before).toContain('system.posix_acl_default');
    expect(before).toContain('user.azs.note');

    const role = await createProvider({ name: 'CA', provider: 'directory', restoreOrder: 1, path: src });
    const bytes = await exportAll(role);
    const dest = path.join(tmp, 'restored');
    await role.import(Readable.from([bytes]), { destination: dest });
    expect(attributes(dest)).toBe(before);
    // The modes as they were too: with an ACL, the group bits are its mask.
    for (const rel of ['', 'private', 'private/ca.key', 'ca.crt'])
      expect((await fs.stat(path.join(dest, rel))).mode, rel).toBe((await fs.stat(path.join(src, rel))).mode);
  });

  it('a folder holding a large file (which the restore writes itself, making the folder first) keeps its ACL and mode', async () => {
    const blobs = path.join(src, 'blobs');
    await fs.mkdir(blobs);
    await fs.writeFile(path.join(blobs, 'large.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
    await fs.chmod(blobs, 0o750);
    execFileSync('setfacl', ['-m', 'u:nobody:rx', blobs]);
    execFileSync('setfacl', ['-d', '-m', 'u:nobody:r', blobs]);
    const before = attributes(src);
    const role = await createProvider({ name: 'CA', provider: 'directory', restoreOrder: 1, path: src });
    const dest = path.join(tmp, 'restored');
    await role.import(Readable.from([await exportAll(role)]), { destination: dest });
    expect(attributes(dest)).toBe(before);
    expect((await fs.stat(path.join(dest, 'blobs'))).mode).toBe((await fs.stat(blobs)).mode);
  });

  it('a restore over a folder replaces its ACLs with those backed up, and removes those added since', async () => {
    execFileSync('setfacl', ['-m', 'u:nobody:r', path.join(src, 'ca.crt')]);
    const role = await createProvider({ name: 'CA', provider: 'directory', restoreOrder: 1, path: src });
    const bytes = await exportAll(role);
    const before = attributes(src);
    execFileSync('setfacl', ['-b', path.join(src, 'ca.crt')]);
    execFileSync('setfacl', ['-m', 'u:nobody:rw', path.join(src, 'private', 'ca.key')]);
    execFileSync('setfattr', ['-n', 'user.azs.later', '-v', 'x', src]);
    await role.import(Readable.from([bytes]));
    expect(attributes(src)).toBe(before);
  });

  it('leaves an SELinux label out (the restoring machine labels by its own policy), keeping the other attributes', async () => {
    const file = path.join(src, 'ca.crt');
    execFileSync('setfattr', ['-n', 'security.selinux', '-v', 'system_u:object_r:cert_t:s0', file]);
    execFileSync('setfattr', ['-n', 'user.azs.note', '-v', 'kept', file]);
    const role = await createProvider({ name: 'CA', provider: 'directory', restoreOrder: 1, path: src });
    const bytes = await exportAll(role);
    expect(bytes.includes(Buffer.from('security.selinux'))).toBe(false);
    expect(bytes.includes(Buffer.from('SCHILY.xattr.user.azs.note=kept'))).toBe(true);
    const dest = path.join(tmp, 'restored');
    await role.import(Readable.from([bytes]), { destination: dest });
    expect(attributes(dest)).toContain('user.azs.note');
    expect(attributes(dest)).not.toContain('security.selinux');
  });

  it.skipIf(!canMount)(
    'refuses a file whose attributes an archive entry cannot hold, rather than make a backup no restore reads',
    async () => {
      // tmpfs takes trusted.* attributes of 64 KiB each, as many as memory allows; ext4 keeps a few KiB.
      const volume = path.join(tmp, 'volume');
      await fs.mkdir(volume);
      expect(mountTmpfs(volume, 'size=16m')).toBe(true);
      try {
        const file = path.join(volume, 'heavy.bin');
        await fs.writeFile(file, 'data\n');
        for (let i = 0; i < 20; i++)
          execFileSync('setfattr', ['-n', `trusted.big${i}`, '-v', `0s${Buffer.alloc(60_000, i).toString('base64')}`, file]);
        const role = await createProvider({ name: 'Heavy', provider: 'directory', restoreOrder: 1, path: volume });
        const err = await exportAll(role).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toMatchObject({ errorId: 'DirectoryAttributesTooLarge', targetObject: file });
        expect((err as Error).message).toMatch(/1200\d{3} bytes of extended attributes/);
      } finally {
        unmount(volume);
      }
    },
  );

  it('the same tree gives the same archive, attributes included (their order does not depend on the file system)', async () => {
    for (const n of ['user.b', 'user.a', 'user.c']) execFileSync('setfattr', ['-n', n, '-v', n, path.join(src, 'ca.crt')]);
    const role = await createProvider({ name: 'CA', provider: 'directory', restoreOrder: 1, path: src });
    const first = await exportAll(role);
    expect((await exportAll(role)).equals(first)).toBe(true);
    const text = first.toString('latin1');
    expect(text.indexOf('SCHILY.xattr.user.a=')).toBeLessThan(text.indexOf('SCHILY.xattr.user.b='));
    expect(text.indexOf('SCHILY.xattr.user.b=')).toBeLessThan(text.indexOf('SCHILY.xattr.user.c='));
  });
});
