/**
 * What only the local folder target can show: real ENOSPC and read-only file systems (tmpfs mounts,
 * when this machine allows them), and checkShare on a folder.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { checkShare } from '../../src/targets/share-check.js';
import { isPartialName } from '../../src/targets/paths.js';
import { rejected } from '../support/errors.js';

function tryMount(dir: string, options: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let base: string;
beforeAll(async () => {
  base = await fsp.mkdtemp(path.join(os.tmpdir(), 'azs-local-'));
});
afterAll(async () => {
  await fsp.rm(base, { recursive: true, force: true });
});

describe('LocalFolderTarget', () => {
  it('needs an absolute root', () => {
    expect(() => new LocalFolderTarget('relative/dir')).toThrow(AzsError);
  });

  it('never shows a half-written file under its final name while it streams', async () => {
    const root = await fsp.mkdtemp(path.join(base, 'stream-'));
    const t = new LocalFolderTarget(root);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const data = Readable.from(
      (async function* () {
        yield randomBytes(1024 * 1024);
        await gate;
        yield randomBytes(1024);
      })(),
    );
    const writing = t.write('dir/file.bin', data);
    await new Promise((r) => setTimeout(r, 200));
    const during = fs.readdirSync(path.join(root, 'dir'));
    expect(during).not.toContain('file.bin');
    expect(during.every(isPartialName)).toBe(true);
    release();
    await writing;
    expect(fs.readdirSync(path.join(root, 'dir'))).toEqual(['file.bin']);
    expect(fs.statSync(path.join(root, 'dir/file.bin')).size).toBe(1024 * 1024 + 1024);
  });

  it('reports a root that is a file as SharePath', async () => {
    const file = path.join(base, 'plain-file');
    await fsp.writeFile(file, 'x');
    const e = await rejected(new LocalFolderTarget(file).list(''));
    expect(e.alertType).toBe('SharePath');
  });

  it('maps ENOSPC to ShareCapacity (exit 14) and leaves no partial file', async (ctx) => {
    const dir = await fsp.mkdtemp(path.join(base, 'full-'));
    if (!tryMount(dir, 'size=1m')) ctx.skip();
    try {
      const t = new LocalFolderTarget(dir);
      const e = await rejected(t.write('big.bin', Readable.from([randomBytes(3 * 1024 * 1024)])));
      expect(e.alertType).toBe('ShareCapacity');
      expect(e.category).toBe('QuotaExceeded');
      expect(e.exitCode).toBe(14);
      expect(fs.readdirSync(dir)).toEqual([]);
      const space = await t.freeSpace();
      expect(space.total).toBe(1024 * 1024);
    } finally {
      execFileSync('umount', [dir]);
    }
  });

  it('maps a read-only folder to ShareAuthentication with PermissionDenied (exit 13)', async (ctx) => {
    const dir = await fsp.mkdtemp(path.join(base, 'ro-'));
    if (!tryMount(dir, 'size=1m,ro')) ctx.skip();
    try {
      const t = new LocalFolderTarget(dir);
      const e = await rejected(t.write('x.bin', Readable.from([Buffer.from('x')])));
      expect(e.alertType).toBe('ShareAuthentication');
      expect(e.category).toBe('PermissionDenied');
      expect(e.exitCode).toBe(13);

      const check = await checkShare(t, { requiredBytes: 1 });
      expect(check.Authenticated).toBe(true);
      expect(check.Writable).toBe(false);
      expect(check.Steps.at(-1)).toMatchObject({ Name: 'Write', Succeeded: false });
      expect(check.AlertType).toBe('ShareAuthentication');
    } finally {
      execFileSync('umount', [dir]);
    }
  });
});

describe('checkShare on a local folder', () => {
  it('passes, skipping resolve and connect, and removes its probe', async () => {
    const root = await fsp.mkdtemp(path.join(base, 'check-'));
    await fsp.mkdir(path.join(root, 'MASBackup'));
    const r = await checkShare(new LocalFolderTarget(root), { requiredBytes: 1024 });
    expect(r.Error).toBeNull();
    expect(r.AlertType).toBeNull();
    expect(r.Steps.map((s) => s.Name)).toEqual(['Resolve', 'Connect', 'Authenticate', 'Open', 'Write', 'Read', 'Delete', 'Capacity']);
    expect(r.Steps.every((s) => s.Succeeded)).toBe(true);
    expect(r).toMatchObject({ Path: root, Reachable: true, Authenticated: true, Writable: true, HasEnoughCapacity: true });
    expect(fs.readdirSync(root)).toEqual(['MASBackup']);
    expect(fs.readdirSync(path.join(root, 'MASBackup'))).toEqual([]);
  });

  it('reports a missing folder as SharePath at Open, not as an authentication failure', async () => {
    const r = await checkShare(new LocalFolderTarget(path.join(base, 'nope')), { requiredBytes: 1 });
    expect(r.Steps.at(-1)).toMatchObject({ Name: 'Open', Succeeded: false });
    expect(r.AlertType).toBe('SharePath');
    expect(r.Error?.exitCode).toBe(10);
    expect(r.Authenticated).toBe(true);
  });

  it('reports too little room as ShareCapacity after the probe succeeded', async () => {
    const root = await fsp.mkdtemp(path.join(base, 'cap-'));
    const r = await checkShare(new LocalFolderTarget(root), { requiredBytes: Number.MAX_SAFE_INTEGER });
    expect(r.Writable).toBe(true);
    expect(r.HasEnoughCapacity).toBe(false);
    expect(r.AvailableCapacity).toBeGreaterThan(0);
    expect(r.Steps.at(-1)).toMatchObject({ Name: 'Capacity', Succeeded: false });
    expect(r.AlertType).toBe('ShareCapacity');
    expect(r.Error?.exitCode).toBe(14);
    expect(fs.readdirSync(root)).toEqual([]);
  });
});
