import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbRows, expectOk, fingerprint, freshHome, makeDrill, runCli, sha256, type Drill, fullCopyBackups } from '../support/cli.js';
import { Database } from '../support/provider-fixtures.js';

/**
 * A committed backup, damaged or tampered with on the share in every way the format promises to
 * notice, is refused by Test-InfrastructureBackup (keyless where a hash can see it, and always with
 * the key) and by Restore-AzsBackup, which must leave every destination exactly as it was.
 */

const HEADER = 48;
const TAG = 16;
const ROLE_FILES = ['Files.azsrole', 'Db.azsrole', 'Tarred.azsrole'];

interface Case {
  name: string;
  /** False when the attacker also rewrote the keyless digest: only the key can tell. */
  hashVisible: boolean;
  /**
   * The one role whose stored file was changed, BackupInfo.xml untouched. Restoring that role
   * alone skips the whole-backup hash pass, so only the chunk authentication can refuse it.
   */
  role?: string;
  mutate(folder: string): Promise<void>;
}

async function flipByte(file: string, offset: (size: number) => number): Promise<void> {
  const data = await fs.readFile(file);
  const at = offset(data.length);
  data[at] = data[at]! ^ 0x5a;
  await fs.writeFile(file, data);
}

/** Rewrites BackupInfo.xml text and recomputes its keyless digest, as an attacker without the key could. */
async function editInfoAndRedigest(folder: string, edit: (xml: string) => string): Promise<void> {
  const file = path.join(folder, 'BackupInfo.xml');
  const xml = edit(await fs.readFile(file, 'utf8'));
  const seal = /<Seal Digest="([0-9a-f]{64})"/.exec(xml)!;
  const signed = xml.slice(0, seal.index);
  await fs.writeFile(file, xml.replace(seal[1]!, sha256(signed)));
}

function fileAttr(xml: string, fileName: string, attr: 'Size' | 'Sha256'): string {
  const m = new RegExp(`<File Name="${fileName.replace('.', '\\.')}" Size="(\\d+)" Sha256="([0-9a-f]{64})"`).exec(xml);
  if (!m) throw new Error(`no File element for ${fileName}`);
  return attr === 'Size' ? m[1]! : m[2]!;
}

describe('tampering with a committed backup', () => {
  // The tampering of full-copy role files (format 2), which locations still hold; format 3: verify-repository.test.ts.
  fullCopyBackups();
  let d: Drill;
  let target: any;
  let other: any;
  let pristine: string;
  let chunkSize: number;
  let destinations: () => Promise<string>;
  let before: string;
  /** A copy of the destinations, put back after a restore that wrongly changed them, so one failure does not cascade. */
  let saved: string;
  async function putBackDestinations(): Promise<void> {
    for (const p of [d.files, d.db, d.tarred]) {
      await fs.rm(p, { recursive: true, force: true });
      await fs.cp(path.join(saved, path.basename(p)), p, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    }
    for (const f of [`${d.db}-wal`, `${d.db}-shm`]) await fs.rm(f, { force: true });
  }
  /** Restores share the destinations, so they run one at a time. */
  let restoreQueue: Promise<unknown> = Promise.resolve();
  function oneRestoreAtATime<T>(restore: () => Promise<T>): Promise<T> {
    const turn = restoreQueue.catch(() => undefined).then(restore);
    restoreQueue = turn;
    return turn;
  }

  beforeAll(async () => {
    // 3 MB of random bytes does not compress: Files.azsrole spans several 1 MiB chunks.
    d = await makeDrill({ bigFileBytes: 3 * 1024 * 1024 });
    target = await d.backup();
    other = await d.backup();
    const folder = await d.backupFolder(target.Name);
    pristine = path.join(d.root, 'pristine');
    await fs.cp(folder, pristine, { recursive: true });
    const xml = await fs.readFile(path.join(folder, 'BackupInfo.xml'), 'utf8');
    chunkSize = Number(/ChunkSize="(\d+)"/.exec(xml)![1]);

    // The restore destinations hold something else now; a refused restore must not touch them.
    await fs.writeFile(path.join(d.files, 'cloud.json'), 'edited after the backup');
    await fs.rm(path.join(d.files, 'big.bin'));
    await fs.writeFile(path.join(d.tarred, 'sub-2.json'), 'edited after the backup');
    const db = new Database(d.db);
    db.exec("DELETE FROM items WHERE id % 2 = 0; INSERT INTO items (name) VALUES ('added after the backup')");
    db.close();
    // The folder around the destinations too: a restore must not leave staging debris beside them.
    // (-wal and -shm come from reading the WAL-mode database here, not from the restore.)
    const around = async () =>
      (await fs.readdir(path.dirname(d.files)))
        .filter((n) => !/-(wal|shm)$/.test(n))
        .sort()
        .join(' ');
    destinations = async () =>
      `${await around()}\n${fingerprint(d.files)}\n` + `DB rows ${sha256(JSON.stringify(dbRows(d.db)))}\n${fingerprint(d.tarred)}`;
    before = await destinations();
    saved = path.join(d.root, 'destinations-before');
    await fs.mkdir(saved);
    for (const p of [d.files, d.db, d.tarred])
      await fs.cp(p, path.join(saved, path.basename(p)), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  });
  afterAll(async () => d?.cleanup());

  it('the untouched backup passes both checks (so the failures below are the tampering)', async () => {
    const size = (await fs.stat(path.join(pristine, 'Files.azsrole'))).size;
    expect(size).toBeGreaterThan(HEADER + 3 * (chunkSize + TAG));
    const share = await copyShare('untouched', async () => {});
    const keyless = await d.cli(['Test-InfrastructureBackup', '-Name', target.Name, '-Path', share]);
    expect(keyless.code).toBe(0);
    expect(keyless.json.IsValid).toBe(true);
    const { args, stdin } = d.decryptArgs();
    const keyed = await d.cli(['Test-InfrastructureBackup', '-Name', target.Name, '-Path', share, ...args], { stdin });
    expect(keyed.code).toBe(0);
    expect(keyed.json).toMatchObject({ IsValid: true, Mode: 'Authenticated', FilesChecked: 4 });
    expect(keyed.json.ChunksAuthenticated).toBeGreaterThanOrEqual(6);
  });

  /** A copy of the share with the target backup replaced by a mutated copy of its pristine folder. */
  async function copyShare(label: string, mutate: (folder: string) => Promise<void>): Promise<string> {
    const share = path.join(d.root, `share-${label.replace(/[^a-z0-9]+/gi, '-')}`);
    await fs.cp(d.share, share, { recursive: true });
    const rel = path.relative(d.share, await d.backupFolder(target.Name));
    const folder = path.join(share, rel);
    await fs.rm(folder, { recursive: true });
    await fs.cp(pristine, folder, { recursive: true });
    await mutate(folder);
    return share;
  }

  const cases: Case[] = [
    ...ROLE_FILES.flatMap((f): Case[] => [
      {
        name: `one byte in the middle of ${f}`,
        hashVisible: true,
        role: path.basename(f, '.azsrole'),
        mutate: (dir) => flipByte(path.join(dir, f), (n) => Math.floor(n / 2)),
      },
      {
        name: `one byte in the header of ${f}`,
        hashVisible: true,
        role: path.basename(f, '.azsrole'),
        mutate: (dir) => flipByte(path.join(dir, f), () => 20),
      },
    ]),
    {
      name: 'the last byte (a tag) of Files.azsrole',
      hashVisible: true,
      role: 'Files',
      mutate: (dir) => flipByte(path.join(dir, 'Files.azsrole'), (n) => n - 1),
    },
    {
      name: 'one byte in the middle of BackupInfo.xml',
      hashVisible: true,
      mutate: (dir) => flipByte(path.join(dir, 'BackupInfo.xml'), (n) => Math.floor(n / 2)),
    },
    {
      name: 'one byte in the header of BackupInfo.xml',
      hashVisible: true,
      mutate: (dir) => flipByte(path.join(dir, 'BackupInfo.xml'), () => 3),
    },
    {
      name: 'Files.azsrole truncated inside a chunk',
      hashVisible: true,
      role: 'Files',
      mutate: async (dir) => fs.truncate(path.join(dir, 'Files.azsrole'), HEADER + chunkSize + TAG + 1000),
    },
    {
      name: 'Files.azsrole truncated at a chunk boundary',
      hashVisible: true,
      role: 'Files',
      mutate: async (dir) => fs.truncate(path.join(dir, 'Files.azsrole'), HEADER + 2 * (chunkSize + TAG)),
    },
    {
      name: 'Files.azsrole truncated at a chunk boundary, BackupInfo size and hash rewritten',
      hashVisible: false,
      mutate: async (dir) => {
        const file = path.join(dir, 'Files.azsrole');
        await fs.truncate(file, HEADER + 2 * (chunkSize + TAG));
        const data = await fs.readFile(file);
        await editInfoAndRedigest(dir, (xml) =>
          xml
            .replace(`Size="${fileAttr(xml, 'Files.azsrole', 'Size')}" Sha256=`, `Size="${data.length}" Sha256=`)
            .replace(fileAttr(xml, 'Files.azsrole', 'Sha256'), sha256(data)),
        );
      },
    },
    {
      name: 'two chunks of Files.azsrole swapped',
      hashVisible: true,
      role: 'Files',
      mutate: (dir) => swapChunks(path.join(dir, 'Files.azsrole')),
    },
    {
      name: 'two chunks of Files.azsrole swapped, BackupInfo hash rewritten',
      hashVisible: false,
      mutate: async (dir) => {
        const file = path.join(dir, 'Files.azsrole');
        const old = sha256(await fs.readFile(file));
        await swapChunks(file);
        const now = sha256(await fs.readFile(file));
        await editInfoAndRedigest(dir, (xml) => xml.replace(old, now));
      },
    },
    {
      name: 'Files.azsrole copied in from another backup of the same roles',
      hashVisible: true,
      role: 'Files',
      mutate: async (dir) => fs.copyFile(path.join(await d.backupFolder(other.Name), 'Files.azsrole'), path.join(dir, 'Files.azsrole')),
    },
    {
      name: 'Db.azsrole copied in from another backup, BackupInfo size and hash rewritten',
      hashVisible: false,
      mutate: async (dir) => {
        const spliced = await fs.readFile(path.join(await d.backupFolder(other.Name), 'Db.azsrole'));
        await fs.writeFile(path.join(dir, 'Db.azsrole'), spliced);
        await editInfoAndRedigest(dir, (xml) =>
          xml.replace(
            `Size="${fileAttr(xml, 'Db.azsrole', 'Size')}" Sha256="${fileAttr(xml, 'Db.azsrole', 'Sha256')}"`,
            `Size="${spliced.length}" Sha256="${sha256(spliced)}"`,
          ),
        );
      },
    },
    {
      name: 'a role Size edited in BackupInfo.xml',
      hashVisible: true,
      mutate: async (dir) => {
        const file = path.join(dir, 'BackupInfo.xml');
        const xml = await fs.readFile(file, 'utf8');
        const edited = xml.replace(
          /(<Role Name="Files" Status="Succeeded" Size=")(\d+)/,
          (_m, a: string, n: string) => `${a}${Number(n) + 1}`,
        );
        expect(edited).not.toBe(xml);
        await fs.writeFile(file, edited);
      },
    },
    {
      name: 'a role Status edited in BackupInfo.xml',
      hashVisible: true,
      mutate: async (dir) => {
        const file = path.join(dir, 'BackupInfo.xml');
        const xml = await fs.readFile(file, 'utf8');
        const edited = xml.replace('<Role Name="Db" Status="Succeeded"', '<Role Name="Db" Status="Failed"');
        expect(edited).not.toBe(xml);
        await fs.writeFile(file, edited);
      },
    },
    {
      name: 'a role Size edited in BackupInfo.xml, digest recomputed',
      hashVisible: false,
      mutate: (dir) =>
        editInfoAndRedigest(dir, (xml) =>
          xml.replace(/(<Role Name="Tarred" Status="Succeeded" Size=")(\d+)/, (_m, a: string, n: string) => `${a}${Number(n) * 2}`),
        ),
    },
  ];

  async function swapChunks(file: string): Promise<void> {
    const data = await fs.readFile(file);
    const rec = chunkSize + TAG;
    const a = Buffer.from(data.subarray(HEADER, HEADER + rec));
    const b = Buffer.from(data.subarray(HEADER + rec, HEADER + 2 * rec));
    b.copy(data, HEADER);
    a.copy(data, HEADER + rec);
    await fs.writeFile(file, data);
  }

  it.concurrent.each(cases)('$name is detected by Test-InfrastructureBackup and refused by Restore-AzsBackup', async (c) => {
    const share = await copyShare(c.name, c.mutate);
    const { args, stdin } = d.decryptArgs();

    const keyless = await d.cli(['Test-InfrastructureBackup', '-Name', target.Name, '-Path', share]);
    if (c.hashVisible) {
      expect(keyless.code, keyless.stderr).toBe(12);
      expect(keyless.json?.IsValid).toBe(false);
      expect(keyless.errors.length).toBeGreaterThan(0);
      expect(keyless.errors.every((e) => e.ExitCode === 12)).toBe(true);
    }

    const keyed = await d.cli(['Test-InfrastructureBackup', '-Name', target.Name, '-Path', share, ...args], { stdin });
    expect(keyed.code, keyed.stderr).toBe(12);
    expect(keyed.json?.IsValid).toBe(false);
    expect(keyed.errors.length).toBeGreaterThan(0);

    /** A restore on a fresh machine must be refused with exit 12 and leave the destinations as they were. */
    const expectRefusedRestore = async (extra: string[]) => {
      const restore = await oneRestoreAtATime(async () => {
        const r = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', target.Name, '-Path', share, ...extra, ...args], {
          stdin,
        });
        const after = await destinations();
        if (after !== before) await putBackDestinations();
        return { r, after };
      });
      expect(restore.r.code, restore.r.stderr).toBe(12);
      expect(restore.r.errors[0]?.ExitCode).toBe(12);
      expect(restore.after).toBe(before);
    };
    await expectRefusedRestore([]);
    if (c.role) await expectRefusedRestore(['-RoleName', c.role]);
    await fs.rm(share, { recursive: true, force: true });
  });

  it('a backup whose BackupInfo.xml was edited lists as Failed and not recovery-ready, whatever it claims', async () => {
    const share = await copyShare('listed after an edit', async (dir) => {
      const file = path.join(dir, 'BackupInfo.xml');
      const xml = await fs.readFile(file, 'utf8');
      const edited = xml.replace('<Role Name="Db" Status="Succeeded"', '<Role Name="Db" Status="Failed"');
      expect(edited).not.toBe(xml);
      await fs.writeFile(file, edited);
    });
    const untouched = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', other.Name, '-Path', share])).json;
    expect(untouched).toMatchObject({ Status: 'Succeeded', IsCloudRecoveryReady: true });
    const listed = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', target.Name, '-Path', share])).json;
    expect(listed).toMatchObject({ Status: 'Failed', IsCloudRecoveryReady: false });
    expect(listed.Progress).toMatch(/BackupInfo\.xml was changed/);
    await fs.rm(share, { recursive: true, force: true });
  });

  it('a wrong key is refused with exit 12 and touches nothing', async () => {
    const otherKey = expectOk(await d.cli(['New-EncryptionKey'])).json.Key as string;
    const keyed = await d.cli(['Test-InfrastructureBackup', '-Name', target.Name, '-EncryptionKey', '-'], { stdin: `${otherKey}\n` });
    expect(keyed.code).toBe(12);
    expect(keyed.errors.map((e) => e.ErrorId)).toContain('WrongDecryptionMaterial');

    const r = await oneRestoreAtATime(async () => {
      const res = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', target.Name, '-Path', d.share, '-EncryptionKey', '-'], {
        stdin: `${otherKey}\n`,
      });
      return { res, after: await destinations() };
    });
    expect(r.res.code).toBe(12);
    expect(['WrongDecryptionMaterial', 'DataKeyUnwrapFailed']).toContain(r.res.errors[0]?.ErrorId);
    expect(r.after).toBe(before);
  });
});

describe('certificate material', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'certificate', roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
  });
  afterAll(async () => d?.cleanup());

  it('a wrong .pfx password is refused with exit 12 and touches nothing', async () => {
    const backup = await d.backup();
    await fs.writeFile(path.join(d.files, 'cloud.json'), 'changed');
    const now = fingerprint(d.files);
    const args = ['-Name', backup.Name, '-Path', d.share, '-DecryptionCertPath', d.pfx!, '-DecryptionCertPassword', '-'];

    const test = await d.cli(['Test-InfrastructureBackup', ...args], { stdin: 'not-the-password\n' });
    expect(test.code).toBe(12);
    expect(test.errors[0]?.ErrorId).toBe('WrongDecryptionCertPassword');

    const restore = await runCli(await freshHome(d), ['Restore-AzsBackup', ...args], { stdin: 'not-the-password\n' });
    expect(restore.code).toBe(12);
    expect(restore.errors[0]?.ErrorId).toBe('WrongDecryptionCertPassword');
    expect(fingerprint(d.files)).toBe(now);

    // The right password works, so the refusal above was the password.
    const ok = await d.cli(['Test-InfrastructureBackup', ...args], { stdin: `${d.pfxPassword}\n` });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json.IsValid).toBe(true);
  });
});
