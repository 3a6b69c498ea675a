/**
 * The SMB target against real Samba servers: failure classification, capacity, and that the
 * password never shows in any process's command line or environment.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeIfEmpty } from '../../src/catalog/share-catalog.js';
import { loadIndex, writeIndexFiles } from '../../src/repository/index-file.js';
import { deriveRepositoryKeys } from '../../src/repository/keys.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { readRepositoryConfig, REPOSITORY_CONFIG_FILE } from '../../src/repository/repository-config.js';
import { checkShare, openTarget } from '../../src/targets/index.js';
import type { Target } from '../../src/targets/target.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';
import { rejected } from '../support/errors.js';
import type { AzsError } from '../../src/errors.js';

function parentOf(pid: string): number | undefined {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces, so split after ')'.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function canMount(): boolean {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'azs-mnt-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
    execFileSync('umount', [dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    fs.rmdirSync(dir);
  }
}

describe.skipIf(!sambaAvailable())('SMB target on Samba', () => {
  let samba: SambaServer;
  let tiny: SambaServer;
  const cred = () => ({ userName: samba.userName, password: samba.password });
  const target = (url = samba.smbUrl, c = cred()): Target => openTarget(url, c);

  beforeAll(async () => {
    [samba, tiny] = await Promise.all([startSamba(), startSamba({ maxDiskSizeMB: 2 })]);
  });
  afterAll(async () => {
    await Promise.all([samba?.stop(), tiny?.stop()]);
  });

  it('accepts DOMAIN\\user, user@domain and plain user names', async () => {
    for (const userName of [samba.userName, `WORKGROUP\\${samba.userName}`, `${samba.userName}@WORKGROUP`]) {
      expect(Array.isArray(await target(samba.smbUrl, { userName, password: samba.password }).list(''))).toBe(true);
    }
  });

  it('classifies a wrong password as ShareAuthentication, exit 13', async () => {
    const e = await rejected(target(samba.smbUrl, { userName: samba.userName, password: 'not the password' }).list(''));
    expect(e.alertType).toBe('ShareAuthentication');
    expect(e.category).toBe('AuthenticationError');
    expect(e.exitCode).toBe(13);
    expect(e.message).toContain('LOGON_FAILURE');
    expect(e.message).not.toContain('not the password');
    expect(e.recommendedAction).toMatch(/password/i);
  });

  it('classifies an unknown share and a missing folder as SharePath, exit 10', async () => {
    const e = await rejected(target(`smb://127.0.0.1:${samba.port}/nosuchshare`).list(''));
    expect(e.alertType).toBe('SharePath');
    expect(e.exitCode).toBe(10);
    expect(e.message).toContain('nosuchshare');
    const f = await rejected(target(`${samba.smbUrl}/no/such/folder`).write('x', Readable.from([Buffer.from('x')])));
    expect(f.alertType).toBe('SharePath');
    expect(f.exitCode).toBe(10);
  });

  it('classifies a stopped server as ShareConnectivity, and works again after a restart', async () => {
    const own = await startSamba();
    try {
      const t = openTarget(own.smbUrl, { userName: own.userName, password: own.password });
      await t.write('before.txt', Readable.from([Buffer.from('b')]));
      await own.kill();
      for (const op of [() => t.list(''), () => t.read('before.txt'), () => t.write('after.txt', Readable.from([Buffer.from('a')]))]) {
        const e = await rejected(op());
        expect(e.alertType).toBe('ShareConnectivity');
        expect(e.category).toBe('ConnectionError');
        expect(e.exitCode).toBe(10);
      }
      const check = await checkShare(t, { requiredBytes: 1 });
      expect(check.Reachable).toBe(false);
      expect(check.Steps.at(-1)).toMatchObject({ Name: 'Connect', Succeeded: false });
      expect(check.AlertType).toBe('ShareConnectivity');

      await own.restart!();
      expect((await t.list('')).map((e) => e.name)).toEqual(['before.txt']);
    } finally {
      await own.stop();
    }
  });

  it("reports Samba's max disk size as free space and stops a write that does not fit with ShareCapacity", async () => {
    const t = openTarget(tiny.smbUrl, { userName: tiny.userName, password: tiny.password });
    const space = await t.freeSpace();
    expect(space.total).toBe(2 * 1024 * 1024);
    expect(space.available).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(space.available).toBeGreaterThan(1024 * 1024);

    await t.write('fits.bin', Readable.from([randomBytes(512 * 1024)]));
    const e = await rejected(
      t.write('backup/too-big.bin', Readable.from([randomBytes(1024 * 1024), randomBytes(1024 * 1024), randomBytes(1024 * 1024)])),
    );
    expect(e.alertType).toBe('ShareCapacity');
    expect(e.category).toBe('QuotaExceeded');
    expect(e.exitCode).toBe(14);
    expect(await t.list('backup')).toEqual([]);
    expect((await t.stat('fits.bin'))?.size).toBe(512 * 1024);
  });

  it('counts writes running side by side against one free-space figure: together they cannot overrun it', async () => {
    const t = openTarget(tiny.smbUrl, { userName: tiny.userName, password: tiny.password });
    const { available } = await t.freeSpace();
    // Each fits alone; the two together do not. Samba's max disk size is only reported, never
    // enforced, so the target's own count is all that stops the second.
    const pieces = () => Readable.from(Array.from({ length: Math.ceil((available * 0.6) / 65536) }, () => randomBytes(65536)));
    const results = await Promise.allSettled([t.write('pair/a.bin', pieces()), t.write('pair/b.bin', pieces())]);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) expect(r.reason).toMatchObject({ alertType: 'ShareCapacity', exitCode: 14 });
    // Whatever was refused left nothing behind, not even a partial file.
    const left = (await t.list('pair')).map((e) => e.name);
    expect(left.length).toBe(2 - refused.length);
    expect(left.every((n) => n === 'a.bin' || n === 'b.bin')).toBe(true);
  });

  it.skipIf(!canMount())('maps a real NT_STATUS_DISK_FULL to ShareCapacity and removes the partial file', async () => {
    const dir = path.join(samba.root, 'small');
    await fsp.mkdir(dir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    try {
      execFileSync('chown', [`${samba.userName}:`, dir]);
      const t = target();
      const e = await rejected(t.write('small/big.bin', Readable.from([randomBytes(3 * 1024 * 1024)])));
      expect(e.alertType).toBe('ShareCapacity');
      expect(e.exitCode).toBe(14);
      expect(e.message).toContain('DISK_FULL');
      expect(await t.list('small')).toEqual([]);
    } finally {
      execFileSync('umount', [dir]);
    }
  });

  // smbclient fetches a file whole into this machine's private folder before it can be refused: an
  // index load asked for every index file its listing named, whatever the size listed, so a file of
  // any size named like an index file filled the local disk (or took as long as it took to fetch)
  // before FileTooLarge. Every backup, prune and Test-BackupRepository loads the index.
  it.skipIf(!canMount())('an index file listed over the limit is refused from its listed size, never fetched', async () => {
    const local = await fsp.mkdtemp(path.join(os.tmpdir(), 'azs-smb-private-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', local]);
    try {
      const layout = new RepositoryLayout(`huge-index-${randomBytes(4).toString('hex')}/AzsRepository`);
      const keys = deriveRepositoryKeys(Buffer.alloc(32, 7));
      const t = openTarget(samba.smbUrl, cred(), local);
      await writeIndexFiles(t, layout, keys, []);
      await t.mkdir(layout.indexFolder);
      const huge = path.join(samba.root, layout.indexPath('ab'.repeat(32)));
      // 64 MiB listed (sparse on the server): over the 2 MiB a small file may be, and over the local room.
      await fsp.writeFile(huge, '');
      await fsp.truncate(huge, 64 << 20);
      const e = await rejected(loadIndex(t, layout, keys));
      expect(e).toMatchObject({ errorId: 'FileTooLarge', exitCode: 12 });
      expect(e.message).toContain(`${'ab'.repeat(32)}.idx`);
      expect(e.message).toContain('it was not read');
      expect(fs.readdirSync(local).flatMap((d) => fs.readdirSync(path.join(local, d)))).toEqual([]);
    } finally {
      execFileSync('umount', [local]);
      await fsp.rmdir(local);
    }
  });

  it.skipIf(!canMount())("a repository's config.xml listed over the limit is refused from its size, never fetched", async () => {
    const local = await fsp.mkdtemp(path.join(os.tmpdir(), 'azs-smb-private-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', local]);
    try {
      const layout = new RepositoryLayout(`huge-config-${randomBytes(4).toString('hex')}/AzsRepository`);
      const t = openTarget(samba.smbUrl, cred(), local);
      await t.mkdir(layout.root);
      const huge = path.join(samba.root, layout.root, REPOSITORY_CONFIG_FILE);
      // 64 MiB (sparse on the server): over what a config may be, and over the local room.
      await fsp.writeFile(huge, '');
      await fsp.truncate(huge, 64 << 20);
      const e = await rejected(readRepositoryConfig(t, layout));
      expect(e).toMatchObject({ errorId: 'FileTooLarge', exitCode: 12 });
      expect(e.message).toContain('config.xml');
      expect(e.message).toContain('it was not read');
      expect(fs.readdirSync(local).flatMap((d) => fs.readdirSync(path.join(local, d)))).toEqual([]);
    } finally {
      execFileSync('umount', [local]);
      await fsp.rmdir(local);
    }
  });

  // The size a caller checks comes from a listing; another writer may make the file larger before
  // smbclient fetches it, and smbclient fetches whole files onto this machine's disk.
  it.skipIf(!canMount())('a small file that grew after it was listed is fetched no further than the limit', async () => {
    const local = await fsp.mkdtemp(path.join(os.tmpdir(), 'azs-smb-private-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', local]);
    try {
      const folder = `grown-${randomBytes(4).toString('hex')}`;
      await fsp.mkdir(path.join(samba.root, folder));
      for (const [name, text] of [
        ['a', 'first'],
        ['c', 'third'],
        ['e', 'fifth'],
      ])
        await fsp.writeFile(path.join(samba.root, folder, name!), text!);
      // 64 MiB, sparse on the server: over the 1 MiB asked for, and over the local room.
      for (const name of ['b', 'd']) {
        await fsp.writeFile(path.join(samba.root, folder, name), '');
        await fsp.truncate(path.join(samba.root, folder, name), 64 << 20);
      }
      const t = openTarget(samba.smbUrl, cred(), local);
      const read = await t.readSmallFiles(
        ['a', 'b', 'missing', 'c', 'd', 'e'].map((n) => `${folder}/${n}`),
        1 << 20,
      );
      expect(read.map((r) => (r === undefined ? undefined : Buffer.isBuffer(r) ? r.toString() : (r as AzsError).errorId))).toEqual([
        'first',
        'FileTooLarge',
        undefined,
        'third',
        'FileTooLarge',
        'fifth',
      ]);
      expect(fs.readdirSync(local)).toEqual([]);
    } finally {
      execFileSync('umount', [local]);
      await fsp.rmdir(local);
    }
  });

  it('never shows the password in any command line or environment while a 50 MB write streams', async () => {
    const t = target();
    const secret = samba.password;
    // The host may hold the password in its environment; smbclient must not inherit it.
    process.env.AZSBACKUP_PASSWORD = secret;
    const seen = { processes: 0, smbclients: 0, authFiles: new Set<string>() };
    const leaks: string[] = [];
    let done = false;
    const sampler = (async () => {
      while (!done) {
        for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
          for (const file of ['cmdline', 'environ']) {
            let text: string;
            try {
              text = fs.readFileSync(`/proc/${pid}/${file}`).toString('utf8');
            } catch {
              continue;
            }
            if (file === 'cmdline') seen.processes++;
            if (text.includes(secret)) leaks.push(`${pid}/${file}: ${text.split('\0').join(' ').slice(0, 200)}`);
            // Only our own smbclient children: other test files may run theirs at the same time.
            if (file === 'cmdline' && text.startsWith('smbclient\0') && parentOf(pid) === process.pid) {
              seen.smbclients++;
              const args = text.split('\0');
              const authFile = args[args.indexOf('-A') + 1];
              if (authFile) {
                try {
                  const mode = fs.statSync(authFile).mode & 0o777;
                  const dirMode = fs.statSync(path.dirname(authFile)).mode & 0o777;
                  seen.authFiles.add(`${authFile} ${mode.toString(8)} ${dirMode.toString(8)}`);
                } catch {
                  // already removed
                }
              }
            }
          }
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      const chunk = randomBytes(1024 * 1024);
      const data = Readable.from(
        (async function* () {
          for (let i = 0; i < 50; i++) {
            yield chunk;
            await new Promise((r) => setImmediate(r));
          }
        })(),
      );
      expect(await t.write('secret-test/big.bin', data)).toEqual({ bytes: 50 * 1024 * 1024 });
    } finally {
      done = true;
      await sampler;
      delete process.env.AZSBACKUP_PASSWORD;
    }
    expect(leaks).toEqual([]);
    expect(seen.smbclients).toBeGreaterThan(0);
    expect(seen.authFiles.size).toBeGreaterThan(0);
    for (const entry of seen.authFiles) {
      const [file, mode, dirMode] = entry.split(' ');
      expect(mode).toBe('600');
      expect(dirMode).toBe('700');
      // Removed once smbclient finished.
      expect(fs.existsSync(file!)).toBe(false);
    }
  });

  it('reads file names that look like smbclient messages as names: nothing fails, nothing looks empty', async () => {
    const t = target();
    const folder = `odd-names-${Date.now()}`;
    const names = [
      'readme NT_STATUS_NOT_FOUND.txt',
      'note NT_STATUS_DISK_FULL.txt',
      'Connection to x failed (Error NT_STATUS_IO_TIMEOUT)',
      '1 blocks of size 1. 1 blocks available',
    ];
    await fs.promises.mkdir(path.join(samba.root, folder, 'sub'), { recursive: true });
    for (const n of names) {
      await fs.promises.writeFile(path.join(samba.root, folder, n), 'x');
      await fs.promises.writeFile(path.join(samba.root, folder, 'sub', n), 'y');
    }
    expect((await t.list(folder)).map((e) => e.name).sort()).toEqual([...names, 'sub'].sort());
    expect((await t.listTree(folder)).map((e) => e.path).sort()).toEqual([...names, 'sub', ...names.map((n) => `sub/${n}`)].sort());
    expect(await t.stat(`${folder}/${names[0]}`)).toMatchObject({ name: names[0], isDirectory: false, size: 1 });
    // A folder that is not empty is not removed as empty: prune's removeIfEmpty.
    await removeIfEmpty(t, `${folder}/sub`);
    expect((await t.list(`${folder}/sub`)).length).toBe(names.length);
    // The free space is the server's, not a file's name.
    const rootFile = path.join(samba.root, names[3]!);
    await fs.promises.writeFile(rootFile, 'x');
    try {
      expect((await t.freeSpace()).available).toBeGreaterThan(1024 * 1024);
      expect((await t.list('')).some((e) => e.name === names[3])).toBe(true);
    } finally {
      await fs.promises.rm(rootFile);
    }
  });

  it('lists the tree under a configured folder whose name lower-cases to another length (İ)', async () => {
    await fs.promises.mkdir(path.join(samba.root, 'İstanbul', 'MASBackup', '20240101T000000Z', 'abc'), { recursive: true });
    await fs.promises.writeFile(path.join(samba.root, 'İstanbul', 'MASBackup', '20240101T000000Z', 'abc', 'BackupInfo.xml'), 'x');
    const t = target(`${samba.smbUrl}/İstanbul`);
    expect((await t.listTree('MASBackup')).map((e) => e.path).sort()).toEqual([
      '20240101T000000Z',
      '20240101T000000Z/abc',
      '20240101T000000Z/abc/BackupInfo.xml',
    ]);
  });

  it('refuses credentials the auth file cannot carry', () => {
    for (const password of ['line\nbreak', ' leading space']) {
      expect(() => target(samba.smbUrl, { userName: samba.userName, password })).toThrow(
        expect.objectContaining({ errorId: 'UnsupportedCredential', exitCode: 2 }),
      );
    }
  });

  it('says clearly when smbclient is not installed', async () => {
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const e = await rejected(target().list(''));
      expect(e.errorId).toBe('SmbClientMissing');
      expect(e.recommendedAction).toContain('apt-get install smbclient');
    } finally {
      process.env.PATH = saved;
    }
  });

  describe('checkShare', () => {
    it('passes every step on a healthy share and leaves no probe behind', async () => {
      const t = target();
      const r = await checkShare(t, { requiredBytes: 1024 });
      expect(r.Error).toBeNull();
      expect(r.Steps.map((s) => [s.Name, s.Succeeded])).toEqual([
        ['Resolve', true],
        ['Connect', true],
        ['Authenticate', true],
        ['Open', true],
        ['Write', true],
        ['Read', true],
        ['Delete', true],
        ['Capacity', true],
      ]);
      expect(r).toMatchObject({ Reachable: true, Authenticated: true, Writable: true, HasEnoughCapacity: true, RequiredCapacity: 1024 });
      expect(r.AvailableCapacity).toBeGreaterThan(1024);
      expect((await t.list('')).filter((e) => e.name.startsWith('.azsbackup-probe-'))).toEqual([]);
      expect(fs.readdirSync(samba.root).filter((n) => n.startsWith('.azsbackup-probe-'))).toEqual([]);
    });

    const failing: Array<[string, () => Target, string, string, number]> = [
      [
        'a wrong password',
        () => target(samba.smbUrl, { userName: samba.userName, password: 'wrong' }),
        'Authenticate',
        'ShareAuthentication',
        13,
      ],
      ['an unknown share', () => target(`smb://127.0.0.1:${samba.port}/nosuchshare`), 'Open', 'SharePath', 10],
      ['a missing folder', () => target(`${samba.smbUrl}/missing-folder`), 'Open', 'SharePath', 10],
      ['a closed port', () => target(`smb://127.0.0.1:1/backups`), 'Connect', 'ShareConnectivity', 10],
      [
        'too little space',
        () => openTarget(tiny.smbUrl, { userName: tiny.userName, password: tiny.password }),
        'Capacity',
        'ShareCapacity',
        14,
      ],
    ];
    it.each(failing)('stops at the failing step with its alert type: %s', async (_what, make, step, alertType, exitCode) => {
      const r = await checkShare(make(), { requiredBytes: 100 * 1024 * 1024 });
      expect(r.Steps.at(-1)).toMatchObject({ Name: step, Succeeded: false });
      expect(r.Steps.slice(0, -1).every((s) => s.Succeeded)).toBe(true);
      expect(r.AlertType).toBe(alertType);
      expect(r.Error?.alertType).toBe(alertType);
      expect(r.Error?.exitCode).toBe(exitCode);
      expect(r.Steps.at(-1)!.Message).toBe(r.Error!.message);
      if (step === 'Capacity') {
        expect(r.Writable).toBe(true);
        expect(r.HasEnoughCapacity).toBe(false);
        expect(r.AvailableCapacity).toBeLessThan(100 * 1024 * 1024);
      }
    });
  });
});
