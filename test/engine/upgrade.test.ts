import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbRows, expectOk, fingerprint, list, runCli } from '../support/cli.js';
import { OLD_VERSIONS, type OldBuild, oldBuild, oldHistoryMissing } from '../support/old-build.js';
import { Database } from '../support/provider-fixtures.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';

/**
 * A share and an AZSBACKUP_HOME made by an older AzsBackup, used by this one, as an operator meets
 * them after an upgrade; and a share this one wrote, met by an older one on a machine redeployed
 * with it. Nothing the old version made may be lost, misread, or refused without a remedy.
 */

const missing = oldHistoryMissing();

interface Site {
  root: string;
  home: string;
  files: string;
  db: string;
  key: string;
}

async function makeSite(old: OldBuild, share: string[], stdinBeforeKey = ''): Promise<Site> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-upgrade-'));
  const site = { root, home: path.join(root, 'home'), files: path.join(root, 'files'), db: path.join(root, 'db.sqlite'), key: '' };
  await fs.mkdir(path.join(site.files, 'conf.d'), { recursive: true });
  await fs.writeFile(path.join(site.files, 'ca.key'), randomBytes(300_000), { mode: 0o600 });
  await fs.writeFile(path.join(site.files, 'conf.d', 'net.ini'), '[net]\n', { mode: 0o640 });
  await fs.symlink('conf.d/net.ini', path.join(site.files, 'current.ini'));
  const old2021 = new Date('2021-03-04T05:06:07Z');
  await fs.utimes(path.join(site.files, 'ca.key'), old2021, old2021);
  const db = new Database(site.db);
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, secret BLOB)');
  for (let i = 1; i <= 50; i++) db.prepare('INSERT INTO items (name, secret) VALUES (?, ?)').run(`item-${i}`, randomBytes(16));
  db.close();
  site.key = expectOk(await old.cli(site.home, ['New-EncryptionKey'])).json.Key;
  expectOk(await old.cli(site.home, ['Set-BackupShare', ...share, '-EncryptionKey', '-'], { stdin: `${stdinBeforeKey}${site.key}\n` }));
  expectOk(await old.cli(site.home, ['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', site.files]));
  expectOk(await old.cli(site.home, ['Register-InfrastructureRole', '-Name', 'Db', '-Provider', 'sqlite', '-DatabasePath', site.db]));
  return site;
}

describe.skipIf(missing)(`upgrades from older versions (${missing ?? 'built from git history'})`, () => {
  describe.skipIf(!sambaAvailable())('full copies (format 2) on an SMB share, with the home that version wrote', () => {
    let old: OldBuild;
    let samba: SambaServer;
    let site: Site;
    let made: string[];
    let files: string;

    beforeAll(async () => {
      old = await oldBuild(OLD_VERSIONS.fullCopies);
      samba = await startSamba();
      site = await makeSite(old, ['-Path', samba.smbUrl, '-UserName', samba.userName, '-Password', '-'], `${samba.password}\n`);
      files = fingerprint(site.files);
      made = [];
      for (let i = 0; i < 2; i++) made.push(expectOk(await old.cli(site.home, ['Start-InfrastructureBackup'])).json.Name);
      // A failing role leaves an alert behind.
      expectOk(
        await old.cli(site.home, ['Register-InfrastructureRole', '-Name', 'Gone', '-Provider', 'directory', '-Path', `${site.root}/gone`]),
      );
      await old.cli(site.home, ['Start-InfrastructureBackup']);
      expectOk(await old.cli(site.home, ['Unregister-InfrastructureRole', '-Name', 'Gone', '-Confirm:$false']));
    }, 180_000);
    afterAll(async () => {
      await samba?.stop();
      if (site) await fs.rm(site.root, { recursive: true, force: true });
    });

    it('lists, checks keyless and keyed, restores byte for byte, and shows the old configuration and alert', async () => {
      const listed = list(expectOk(await runCli(site.home, ['Get-InfrastructureBackup'])).json);
      for (const name of made) expect(listed.find((b) => b.Name === name)?.Status).toBe('Succeeded');
      expectOk(await runCli(site.home, ['Test-InfrastructureBackup', '-Name', made[0]!]));
      const keyed = expectOk(
        await runCli(site.home, ['Test-InfrastructureBackup', '-Name', made[0]!, '-EncryptionKey', '-'], { stdin: `${site.key}\n` }),
      );
      expect(keyed.json).toMatchObject({ IsValid: true, Authenticity: 'Key' });
      expect(expectOk(await runCli(site.home, ['Test-BackupRepository'])).json.IsValid).toBe(true);
      const config = expectOk(await runCli(site.home, ['Get-BackupConfiguration'])).json;
      expect(config).toMatchObject({ Path: samba.smbUrl, UserName: samba.userName, EncryptionMode: 'Key' });
      const alerts = list(expectOk(await runCli(site.home, ['Get-BackupAlert'])).json);
      expect(alerts.some((a) => a.AlertType === 'BackupGeneral' && /Gone/.test(a.Description))).toBe(true);

      const rows = dbRows(site.db);
      await fs.rm(site.files, { recursive: true });
      await fs.rm(site.db);
      expectOk(
        await runCli(site.home, ['Restore-AzsBackup', '-Name', made[1]!, '-EncryptionKey', '-', '-Confirm:$false'], {
          stdin: `${site.key}\n`,
        }),
      );
      expect(fingerprint(site.files)).toBe(files);
      expect(dbRows(site.db)).toEqual(rows);
    });

    it('backs up on top, re-wraps old and new for a new key, and both restore with it', async () => {
      const fresh = expectOk(await runCli(site.home, ['Start-InfrastructureBackup'])).json.Name;
      const key = expectOk(await runCli(site.home, ['New-EncryptionKey'])).json.Key;
      expectOk(await runCli(site.home, ['Set-BackupShare', '-EncryptionKey', '-', '-SkipValidation'], { stdin: `${key}\n` }));
      expectOk(await runCli(site.home, ['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${site.key}\n` }));
      for (const name of [made[0]!, fresh]) {
        await fs.rm(site.files, { recursive: true });
        const home = await fs.mkdtemp(path.join(site.root, 'fresh-'));
        const share = ['-Path', samba.smbUrl, '-UserName', samba.userName, '-Password', '-'];
        expectOk(
          await runCli(
            home,
            ['Restore-AzsBackup', '-Name', name, ...share, '-EncryptionKey', '-', '-RoleName', 'Files', '-Confirm:$false'],
            {
              stdin: `${samba.password}\n${key}\n`,
            },
          ),
          `restore of ${name} with the new key on a fresh machine`,
        );
        expect(fingerprint(site.files)).toBe(files);
      }
    });
  });

  describe('format 3 with a files cache of version 1, on a local folder', () => {
    let old: OldBuild;
    let site: Site;
    let share: string;
    let files: string;

    beforeAll(async () => {
      old = await oldBuild(OLD_VERSIONS.filesCacheV1);
      share = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-upgrade-share-'));
      site = await makeSite(old, ['-Path', share]);
      files = fingerprint(site.files);
      expectOk(await old.cli(site.home, ['Start-InfrastructureBackup']));
    }, 180_000);
    afterAll(async () => {
      await fs.rm(share, { recursive: true, force: true });
      if (site) await fs.rm(site.root, { recursive: true, force: true });
    });

    it('a backup on top stores nothing again, restores byte for byte, and prune and the keyed check see both', async () => {
      const name = expectOk(await runCli(site.home, ['Start-InfrastructureBackup'])).json.Name;
      const stamp = (await fs.readdir(path.join(share, 'MASBackup'))).sort().at(-1)!;
      const info = readFileSync(path.join(share, 'MASBackup', stamp, name, 'BackupInfo.xml'), 'utf8');
      expect([...info.matchAll(/AddedBytes="(\d+)"/g)].map((m) => m[1])).toEqual(['0', '0']);
      expect(expectOk(await runCli(site.home, ['Invoke-BackupPrune', '-DryRun'])).json).toMatchObject({ BackupsKept: 2, PacksRemoved: 0 });
      const check = expectOk(await runCli(site.home, ['Test-BackupRepository', '-EncryptionKey', '-'], { stdin: `${site.key}\n` })).json;
      expect(check).toMatchObject({ IsValid: true, RepositoryBackups: 2, Problems: [] });

      await fs.rm(site.files, { recursive: true });
      expectOk(
        await runCli(site.home, ['Restore-AzsBackup', '-Name', name, '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${site.key}\n` }),
      );
      expect(fingerprint(site.files)).toBe(files);
    });
  });

  it('a share this version wrote is refused by the full-copy version with the reason and its remedy, not misread', async () => {
    const old = await oldBuild(OLD_VERSIONS.fullCopies);
    const share = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-upgrade-share-'));
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-upgrade-home-'));
    try {
      const key = expectOk(await runCli(home, ['New-EncryptionKey'])).json.Key;
      expectOk(await runCli(home, ['Set-BackupShare', '-Path', share, '-EncryptionKey', '-'], { stdin: `${key}\n` }));
      expectOk(
        await runCli(home, ['Register-InfrastructureRole', '-Name', 'Home', '-Provider', 'directory', '-Path', path.join(home, 'jobs')]),
      );
      const name = expectOk(await runCli(home, ['Start-InfrastructureBackup'])).json.Name;

      const redeployed = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-upgrade-home-'));
      const listed = list(expectOk(await old.cli(redeployed, ['Get-InfrastructureBackup', '-Path', share])).json);
      expect(listed).toEqual([
        expect.objectContaining({ Name: name, Status: 'Failed', Progress: expect.stringMatching(/format version 3/) }),
      ]);
      const r = await old.cli(redeployed, ['Restore-AzsBackup', '-Name', name, '-Path', share, '-EncryptionKey', '-', '-Confirm:$false'], {
        stdin: `${key}\n`,
      });
      expect(r.code).not.toBe(0);
      expect(r.errors.at(-1)).toMatchObject({ ErrorId: 'UnsupportedBackupFormat' });
      expect(r.errors.at(-1)?.RecommendedAction).toMatch(/newer/);
      await fs.rm(redeployed, { recursive: true, force: true });
    } finally {
      await fs.rm(share, { recursive: true, force: true });
      await fs.rm(home, { recursive: true, force: true });
    }
  });
});
