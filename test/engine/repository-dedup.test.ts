import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, makeDrill, type Drill } from '../support/cli.js';
import { readCertificateFile } from '../../src/crypto/certificate.js';
import { wrapFor } from '../../src/crypto/recipient.js';
import { deriveRepositoryKeys } from '../../src/repository/keys.js';
import { parseRepositoryConfig, REPOSITORY_CONFIG_FILE, serializeRepositoryConfig } from '../../src/repository/repository-config.js';

/**
 * The deduplicating repository through the command line, as an operator meets it: what a backup
 * adds to the share is what changed, whichever role or backup stored a piece first; every backup
 * still restores whole; capacity is judged by growth; a machine that cannot open the share's
 * repository still backs up (a full copy) and says why.
 */

const MiB = 1 << 20;

async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true }))
    if (entry.isFile()) total += (await fs.stat(path.join(entry.parentPath, entry.name))).size;
  return total;
}

async function restoreOnFreshMachine(d: Drill, name: string, extra: string[] = []): Promise<void> {
  const home = path.join(d.root, `fresh-${name}`);
  const { args, stdin } = d.decryptArgs();
  const r = expectOk(
    await d.cli(['Restore-AzsBackup', '-Name', name, '-Path', d.share, ...args, ...extra], { stdin, env: { AZSBACKUP_HOME: home } }),
  );
  expect(r.errors).toEqual([]);
}

describe('the deduplicating repository', () => {
  let d: Drill;
  let first: any;
  let afterFirst: number;
  const before: Record<string, string> = {};

  beforeAll(async () => {
    d = await makeDrill({ bigFileBytes: 12 * MiB });
    first = await d.backup();
    afterFirst = await treeBytes(d.share);
    before.files = fingerprint(d.files);
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('stores the first backup whole, in packs beside MASBackup, with a catalog per role in its folder', async () => {
    expect(first.Status).toBe('Succeeded');
    expect((await fs.readdir(d.share)).sort()).toEqual(['AzsRepository', 'MASBackup']);
    expect((await fs.readdir(await d.backupFolder(first.Name))).sort()).toEqual([
      'BackupInfo.xml',
      'Db.azscat',
      'Files.azscat',
      'Tarred.azscat',
    ]);
    // The random 12 MiB do not compress: the first backup adds at least them.
    expect(first.Size).toBeGreaterThan(12 * MiB);
    expect(afterFirst).toBeGreaterThan(12 * MiB);
  });

  it('adds almost nothing for a second backup of the same data, and both restore whole', async () => {
    const second = await d.backup();
    const growth = (await treeBytes(d.share)) - afterFirst;
    expect(second.Size).toBeLessThan(256 * 1024);
    expect(growth).toBeLessThan(256 * 1024);
    for (const name of [first.Name, second.Name]) {
      await fs.rm(d.files, { recursive: true, force: true });
      await restoreOnFreshMachine(d, name);
      expect(fingerprint(d.files)).toBe(before.files);
    }
  });

  it('stores bytes inserted in the middle of a large file, and little else: the chunks after them are found again', async () => {
    const big = path.join(d.files, 'big.bin');
    const bytes = await fs.readFile(big);
    const inserted = Buffer.concat([bytes.subarray(0, 5 * MiB), randomBytes(100_000), bytes.subarray(5 * MiB)]);
    await fs.writeFile(big, inserted);
    const was = await treeBytes(d.share);
    const third = await d.backup();
    const growth = (await treeBytes(d.share)) - was;
    // The 100 KB, the chunks around them and the one holding the file's tar header (chunks gather
    // around 256 KiB, at most 1 MiB): a fraction of the 12 MiB file.
    expect(growth).toBeLessThan(3.5 * MiB);
    expect(third.Size).toBeLessThan(3.5 * MiB);
    const changed = fingerprint(d.files);
    await fs.rm(d.files, { recursive: true, force: true });
    await restoreOnFreshMachine(d, third.Name);
    expect(fingerprint(d.files)).toBe(changed);
    // The older backup is still the older data.
    await fs.rm(d.files, { recursive: true, force: true });
    await restoreOnFreshMachine(d, first.Name);
    expect(fingerprint(d.files)).toBe(before.files);
  });

  it('stores a role whose data another role already stored once', async () => {
    await d.register('FilesAgain', ['-Provider', 'directory', '-Path', d.files, '-RestoreOrder', '30']);
    try {
      const was = await treeBytes(d.share);
      const fourth = await d.backup();
      const again = fourth.RoleStatus.find((r: any) => r.RoleName === 'FilesAgain');
      expect(again.Size).toBeGreaterThan(12 * MiB);
      expect(again.StoredSize).toBeLessThan(64 * 1024);
      // The share grew by what the backup says it stored, and a few small files (BackupInfo.xml, an index file).
      expect((await treeBytes(d.share)) - was - fourth.Size).toBeLessThan(64 * 1024);
    } finally {
      expectOk(await d.cli(['Unregister-InfrastructureRole', '-Name', 'FilesAgain', '-Confirm:$false']));
    }
  });

  it('judges capacity by what a backup adds, not by a full copy per retained backup', async () => {
    const backup = await d.backup();
    const check = expectOk(await d.cli(['Test-BackupShare'])).json;
    // Seven days of two backups a day: 15 retained. A full copy each would need 15 x 12 MiB.
    expect(check.RequiredCapacity).toBeLessThan(15 * MiB);
    expect(check.RequiredCapacity).toBe(backup.Size * Math.round(check.RequiredCapacity / Math.max(1, backup.Size)));
  });
});

describe('a machine that meets a repository it has no keys for', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ bigFileBytes: 2 * MiB, encryption: 'certificate' });
    await d.backup();
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('with only the .cer, backs up a full copy with a warning saying how to dedup again, and the copy restores', async () => {
    const other = path.join(d.root, 'other-machine');
    const env = { AZSBACKUP_HOME: other };
    expectOk(await d.cli(['Set-BackupShare', '-Path', d.share, '-EncryptionCertPath', d.cer!], { env }));
    expectOk(await d.cli(['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', d.files], { env }));
    const r = expectOk(await d.cli(['Start-InfrastructureBackup'], { env }));
    expect(r.json.Status).toBe('Succeeded');
    expect(r.stderr).toMatch(/"Warning".*full copy.*-DecryptionCertPath/s);
    expect((await fs.readdir(await d.backupFolder(r.json.Name))).sort()).toEqual(['BackupInfo.xml', 'Files.azsrole']);
    const files = fingerprint(d.files);
    await fs.rm(d.files, { recursive: true, force: true });
    // That machine was given no .pfx, so its backup cannot prove who made it (as the warning said too).
    await restoreOnFreshMachine(d, r.json.Name, ['-AllowUnauthenticated']);
    expect(fingerprint(d.files)).toBe(files);

    // Given the .pfx once, as the warning says, it joins the store: the next backup stores only what changed.
    expectOk(
      await d.cli(['Set-BackupShare', '-DecryptionCertPath', d.pfx!, '-DecryptionCertPassword', '-'], { env, stdin: `${d.pfxPassword}\n` }),
    );
    const was = await treeBytes(d.share);
    const joined = expectOk(await d.cli(['Start-InfrastructureBackup'], { env }));
    expect(joined.stderr).not.toMatch(/full copy/);
    expect((await fs.readdir(await d.backupFolder(joined.json.Name))).sort()).toEqual(['BackupInfo.xml', 'Files.azscat']);
    // The files are as the first machine backed them up, bar what the restores changed in their tar headers.
    expect(joined.json.Size).toBeLessThan(r.json.Size / 2);
    expect((await treeBytes(d.share)) - was).toBeLessThan(r.json.Size / 2);
    await fs.rm(d.files, { recursive: true, force: true });
    await restoreOnFreshMachine(d, joined.json.Name);
    expect(fingerprint(d.files)).toBe(files);
  });
});

describe('a store whose config.xml someone replaced', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ bigFileBytes: 1 * MiB, encryption: 'certificate' });
    await d.backup();
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('is not joined with the .pfx, even under the same id: no backup it names proves it ours, so backups stay full copies', async () => {
    // Anyone with the public .cer can wrap a master key of their own for it.
    const configFile = path.join(d.share, 'AzsRepository', REPOSITORY_CONFIG_FILE);
    const genuine = parseRepositoryConfig(await fs.readFile(configFile, 'utf8'));
    const cert = await readCertificateFile(d.cer!);
    const attackersMaster = randomBytes(32);
    const recipient = { kind: 'Certificate' as const, thumbprint: cert.thumbprint, publicKeyPem: cert.publicKeyPem };
    const forged = {
      ...genuine,
      publicKey: deriveRepositoryKeys(attackersMaster).publicKey,
      recipients: [wrapFor(recipient, attackersMaster, `AzsRepository ${genuine.id}`)],
    };
    await fs.writeFile(configFile, serializeRepositoryConfig(forged));

    const env = { AZSBACKUP_HOME: path.join(d.root, 'fresh-machine') };
    expectOk(
      await d.cli(
        ['Set-BackupShare', '-Path', d.share, '-EncryptionCertPath', d.cer!, '-DecryptionCertPath', d.pfx!, '-DecryptionCertPassword', '-'],
        {
          env,
          stdin: `${d.pfxPassword}\n`,
        },
      ),
    );
    expectOk(await d.cli(['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', d.files], { env }));
    const packs = async () => (await fs.readdir(path.join(d.share, 'AzsRepository', 'packs'), { recursive: true })).sort();
    const before = await packs();
    const r = expectOk(await d.cli(['Start-InfrastructureBackup'], { env }));
    expect(r.stderr).toMatch(/full copy/);
    expect((await fs.readdir(await d.backupFolder(r.json.Name))).sort()).toEqual(['BackupInfo.xml', 'Files.azsrole']);
    // Nothing went into the store under the forger's key.
    expect(await packs()).toEqual(before);
  });
});

describe('a rotation, seen from the store', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ bigFileBytes: 2 * MiB });
    await d.backup();
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('backs up full copies that the new key alone restores until Update-BackupEncryption re-wraps the store, then dedups again', async () => {
    const oldKey = d.key!;
    const made = expectOk(await d.cli(['New-EncryptionKey'])).json;
    expectOk(await d.cli(['Set-BackupShare', '-EncryptionKey', '-'], { stdin: `${made.Key}\n` }));
    d.key = made.Key;
    const between = expectOk(await d.cli(['Start-InfrastructureBackup']));
    expect(between.stderr).toMatch(/store is not encrypted for .*full copy.*Update-BackupEncryption/s);
    expect((await fs.readdir(await d.backupFolder(between.json.Name))).sort()).toContain('Files.azsrole');
    const files = fingerprint(d.files);
    await fs.rm(d.files, { recursive: true, force: true });
    await restoreOnFreshMachine(d, between.json.Name);
    expect(fingerprint(d.files)).toBe(files);

    expectOk(await d.cli(['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${oldKey}\n` }));
    const was = await treeBytes(d.share);
    const after = expectOk(await d.cli(['Start-InfrastructureBackup']));
    expect(after.stderr).not.toMatch(/full copy/);
    expect((await fs.readdir(await d.backupFolder(after.json.Name))).sort()).toContain('Files.azscat');
    // Against the store's first backup: what the restore above changed in tar headers, not a full copy.
    expect((await treeBytes(d.share)) - was).toBeLessThan(between.json.Size / 2);
    await fs.rm(d.files, { recursive: true, force: true });
    await restoreOnFreshMachine(d, after.json.Name);
    expect(fingerprint(d.files)).toBe(files);
  });
});
