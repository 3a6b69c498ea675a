import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, freshHome, makeDrill, runCli, type Drill } from '../support/cli.js';
import { list } from '../support/smb-drill.js';

/**
 * Key rotation: Update-BackupEncryption re-wraps retained backups for the recipient configured now.
 * Afterwards the new material restores them and the old is refused; the role files are the very
 * same bytes (their data key did not change); BackupInfo.xml is replaced in one step, so no
 * backup ever lists without it.
 */

async function fileDigests(folder: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of (await fs.readdir(folder)).sort())
    out[f] = createHash('sha256')
      .update(await fs.readFile(path.join(folder, f)))
      .digest('hex');
  return out;
}

describe('symmetric key rotation', () => {
  let d: Drill;
  let first: any;
  let second: any;
  let oldKey: string;
  let newKey: { Key: string; KeyId: string };
  let before: string;

  beforeAll(async () => {
    d = await makeDrill({ encryption: 'key' });
    before = fingerprint(d.files);
    first = await d.backup();
    second = await d.backup();
    oldKey = d.key!;
    newKey = expectOk(await d.cli(['New-EncryptionKey']), 'New-EncryptionKey').json;
    expectOk(
      await d.cli(['Set-BackupShare', '-Path', d.share, '-EncryptionKey', '-'], { stdin: `${newKey.Key}\n` }),
      'Set-BackupShare (new key)',
    );
  });
  afterAll(async () => d?.cleanup());

  it('a wrong old key is refused with exit 12 and changes nothing', async () => {
    const folder = await d.backupFolder(first.Name);
    const was = await fileDigests(folder);
    const r = await d.cli(['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${newKey.Key}\n` });
    // The new key opens none of the old backups: nothing to re-wrap, nothing changed.
    expect(r.code, r.stderr).toBe(0);
    expect(list(r.json)).toEqual([]);
    const other = expectOk(await d.cli(['New-EncryptionKey'])).json.Key as string;
    const named = await d.cli(['Update-BackupEncryption', '-Name', first.Name, '-EncryptionKey', '-', '-Confirm:$false'], {
      stdin: `${other}\n`,
    });
    expect(named.code).toBe(12);
    expect(await fileDigests(folder)).toEqual(was);
  });

  it('-Name re-wraps just that backup; its role files stay byte for byte the same', async () => {
    const folder = await d.backupFolder(first.Name);
    const was = await fileDigests(folder);
    const r = expectOk(
      await d.cli(['Update-BackupEncryption', '-Name', first.Name, '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${oldKey}\n` }),
    );
    expect(list(r.json).map((b) => [b.Name, b.EncryptionKeyId])).toEqual([[first.Name, newKey.KeyId]]);
    const now = await fileDigests(folder);
    expect(Object.keys(now)).toEqual(Object.keys(was));
    for (const f of Object.keys(was).filter((n) => n.endsWith('.azscat'))) expect(now[f]).toBe(was[f]);
    expect(now['BackupInfo.xml']).not.toBe(was['BackupInfo.xml']);
    const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(Object.fromEntries(listed.map((b) => [b.Name, b.EncryptionKeyId]))).toEqual({
      [first.Name]: newKey.KeyId,
      [second.Name]: d.keyId,
    });
  });

  it('without -Name, every backup the old key opens is re-wrapped, and nothing is left beside them', async () => {
    const r = expectOk(await d.cli(['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${oldKey}\n` }));
    expect(list(r.json).map((b) => b.Name)).toEqual([second.Name]);
    for (const b of [first, second]) {
      expect((await fs.readdir(await d.backupFolder(b.Name))).sort()).toEqual([
        'BackupInfo.xml',
        'Db.azscat',
        'Files.azscat',
        'Tarred.azscat',
      ]);
    }
    const dry = expectOk(await d.cli(['Invoke-BackupPrune', '-DryRun'])).json;
    expect(dry.LeftoversRemoved).toBe(0);
  });

  it('the new key passes the authenticated check and restores on a fresh machine; the old key is refused', async () => {
    const test = expectOk(
      await d.cli(['Test-InfrastructureBackup', '-Name', second.Name, '-EncryptionKey', '-'], { stdin: `${newKey.Key}\n` }),
    ).json;
    expect(test).toMatchObject({ IsValid: true, Mode: 'Authenticated' });
    const refused = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', first.Name, '-Path', d.share, '-EncryptionKey', '-'], {
      stdin: `${oldKey}\n`,
    });
    expect(refused.code).toBe(12);
    await fs.rm(d.files, { recursive: true });
    expectOk(
      await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', first.Name, '-Path', d.share, '-EncryptionKey', '-'], {
        stdin: `${newKey.Key}\n`,
      }),
      'Restore-AzsBackup',
    );
    expect(fingerprint(d.files)).toBe(before);
  });
});

describe('certificate rotation', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'certificate', roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
  });
  afterAll(async () => d?.cleanup());

  it('re-wrapped for a new certificate, a backup opens with the new .pfx and no longer with the old', async () => {
    const b = await d.backup();
    const cer = path.join(d.root, 'next.cer');
    const pfx = path.join(d.root, 'next.pfx');
    const made = expectOk(
      await d.cli(['New-EncryptionKey', '-Certificate', '-CertificatePath', cer, '-PfxPath', pfx, '-PfxPassword', '-'], {
        stdin: 'next-password\n',
      }),
    ).json;
    expectOk(
      await d.cli(
        ['Set-BackupShare', '-Path', d.share, '-EncryptionCertPath', cer, '-DecryptionCertPath', pfx, '-DecryptionCertPassword', '-'],
        { stdin: 'next-password\n' },
      ),
      'Set-BackupShare (new certificate)',
    );
    const r = expectOk(
      await d.cli(['Update-BackupEncryption', '-DecryptionCertPath', d.pfx!, '-DecryptionCertPassword', '-', '-Confirm:$false'], {
        stdin: `${d.pfxPassword}\n`,
      }),
    );
    expect(list(r.json).map((x) => [x.Name, x.EncryptionCertThumbprint])).toEqual([[b.Name, made.Thumbprint]]);
    const withNew = await d.cli(
      ['Test-InfrastructureBackup', '-Name', b.Name, '-DecryptionCertPath', pfx, '-DecryptionCertPassword', '-'],
      { stdin: 'next-password\n' },
    );
    expect(withNew.code, withNew.stderr).toBe(0);
    expect(withNew.json.IsValid).toBe(true);
    const withOld = await d.cli(['Test-InfrastructureBackup', '-Name', b.Name, ...d.decryptArgs().args], { stdin: d.decryptArgs().stdin });
    expect(withOld.code).toBe(12);
  });
});

describe('rotation that meets a damaged backup, or a downgrade', () => {
  it('a backup whose BackupInfo.xml was edited is reported; the others are still re-wrapped', async () => {
    const d = await makeDrill({ encryption: 'key', roles: false });
    try {
      await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
      const backups = [await d.backup(), await d.backup(), await d.backup()];
      const oldKey = d.key!;
      const next = expectOk(await d.cli(['New-EncryptionKey'])).json;
      expectOk(await d.cli(['Set-BackupShare', '-Path', d.share, '-EncryptionKey', '-'], { stdin: `${next.Key}\n` }));
      const info = path.join(await d.backupFolder(backups[2].Name), 'BackupInfo.xml');
      await fs.writeFile(
        info,
        (await fs.readFile(info, 'utf8')).replace(/DurationMs="(\d+)"/, (_m, n: string) => `DurationMs="${Number(n) + 1}"`),
      );
      const r = await d.cli(['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${oldKey}\n` });
      expect(r.code, r.stderr).toBe(3);
      expect(
        list(r.json)
          .map((b) => b.Name)
          .sort(),
      ).toEqual([backups[0].Name, backups[1].Name].sort());
      expect(r.errors.map((e) => [e.ErrorId, e.TargetObject])).toEqual([['BackupInfoTampered', backups[2].Name]]);
    } finally {
      await d.cleanup();
    }
  });

  it('a backup made for a certificate is not re-wrapped for a symmetric key', async () => {
    const d = await makeDrill({ encryption: 'certificate', roles: false });
    try {
      await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
      const b = await d.backup();
      expectOk(await d.cli(['Clear-BackupConfiguration', '-Confirm:$false']));
      const key = expectOk(await d.cli(['New-EncryptionKey'])).json;
      expectOk(await d.cli(['Set-BackupShare', '-Path', d.share, '-EncryptionKey', '-'], { stdin: `${key.Key}\n` }));
      const r = await d.cli(['Update-BackupEncryption', ...d.decryptArgs().args, '-Confirm:$false'], { stdin: d.decryptArgs().stdin });
      expect(r.code).toBe(2);
      expect(r.errors.map((e) => e.ErrorId)).toEqual(['EncryptionDowngradeRefused']);
      const listed = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', b.Name, '-Path', d.share])).json;
      expect([listed.EncryptionCertThumbprint, listed.EncryptionKeyId]).toEqual([b.EncryptionCertThumbprint, null]);
    } finally {
      await d.cleanup();
    }
  });
});

// Update-BackupEncryption dropped every wrap of the share's store other than the new recipients'
// at the end of a run without -Name, though backups in the store were left on older material: one
// it could not re-wrap (a backup made before the .pfx was given, refused as unauthenticated; exit
// 3, "those still open only with the old .pfx"), or one made for a certificate other than the one
// given. Such a backup's data key opened with the old .pfx, and the store's master key its chunks
// need with the new one only: neither restored it.
describe('a rotation that leaves backups on older material', () => {
  const newCertificate = async (d: Drill, name: string) => {
    const cer = path.join(d.root, `${name}.cer`);
    const pfx = path.join(d.root, `${name}.pfx`);
    const password = `${name}-password`;
    expectOk(
      await d.cli(['New-EncryptionKey', '-Certificate', '-CertificatePath', cer, '-PfxPath', pfx, '-PfxPassword', '-'], {
        stdin: `${password}\n`,
      }),
    );
    return { cer, pfx, password };
  };
  const pfxArgs = (c: { pfx: string }) => ['-DecryptionCertPath', c.pfx, '-DecryptionCertPassword', '-'];
  /** Restores on a fresh machine with this .pfx alone, and says whether the role came back as it was. */
  const restores = async (d: Drill, name: string, c: { pfx: string; password: string }, before: string) => {
    await fs.rm(d.files, { recursive: true, force: true });
    const r = await runCli(
      await freshHome(d),
      ['Restore-AzsBackup', '-Name', name, '-Path', d.share, ...pfxArgs(c), '-AllowUnauthenticated', '-Confirm:$false'],
      { stdin: `${c.password}\n` },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(d.files)).toBe(before);
  };
  /** A drill with one directory role, configured (with set-up) by the test. */
  const drill = async (test: (d: Drill, before: string) => Promise<void>) => {
    const d = await makeDrill({ encryption: 'certificate', roles: false });
    try {
      await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
      await test(d, fingerprint(d.files));
    } finally {
      await d.cleanup();
    }
  };

  it('a backup it could not re-wrap still restores with the old .pfx, as its exit 3 says', () =>
    drill(async (d, before) => {
      const old = await newCertificate(d, 'old');
      // Configured without its .pfx (warned): the first backup carries no proof of who made it.
      expectOk(await d.cli(['Set-BackupShare', '-EncryptionCertPath', old.cer]));
      const unproven = await d.backup();
      expectOk(await d.cli(['Set-BackupShare', ...pfxArgs(old)], { stdin: `${old.password}\n` }));
      const proven = await d.backup();
      const next = await newCertificate(d, 'next');
      expectOk(await d.cli(['Set-BackupShare', '-EncryptionCertPath', next.cer, ...pfxArgs(next)], { stdin: `${next.password}\n` }));

      const r = await d.cli(['Update-BackupEncryption', ...pfxArgs(old), '-Confirm:$false'], { stdin: `${old.password}\n` });
      expect(r.code, r.stderr).toBe(3);
      expect(list(r.json).map((b) => b.Name)).toEqual([proven.Name]);
      expect(r.errors.map((e) => [e.ErrorId, e.TargetObject])).toEqual([['BackupNotAuthenticated', unproven.Name]]);
      expect(r.stderr).toMatch(new RegExp(`store stays encrypted for [0-9A-F]{40} too: backup ${unproven.Name} was not re-wrapped`));
      await restores(d, unproven.Name, old, before);
      await restores(d, proven.Name, next, before);

      // Re-wrapped at last, every backup opens with the new .pfx, and the store no longer with the old.
      expectOk(
        await d.cli(['Update-BackupEncryption', ...pfxArgs(old), '-AllowUnauthenticated', '-Confirm:$false'], {
          stdin: `${old.password}\n`,
        }),
      );
      await restores(d, unproven.Name, next, before);
      const config = await fs.readFile(path.join(d.share, 'AzsRepository', 'config.xml'), 'utf8');
      expect(config.match(/<Recipient /g)).toHaveLength(1);
    }));

  it("a backup made for another certificate than the one given still restores with that certificate's .pfx", () =>
    drill(async (d, before) => {
      const [first, second, last] = [await newCertificate(d, 'first'), await newCertificate(d, 'second'), await newCertificate(d, 'last')];
      // The store is made for `first` alone; then `second` is added, and the store wrapped for both.
      expectOk(await d.cli(['Set-BackupShare', '-EncryptionCertPath', first.cer, ...pfxArgs(first)], { stdin: `${first.password}\n` }));
      const forFirst = await d.backup();
      expectOk(
        await d.cli(['Set-BackupShare', '-EncryptionCertPath', `${first.cer},${second.cer}`, ...pfxArgs(first)], {
          stdin: `${first.password}\n`,
        }),
      );
      expectOk(await d.cli(['Set-BackupShare', ...pfxArgs(second)], { stdin: `${second.password}\n` }));
      const forBoth = await d.backup();
      // Rotated to `last`; the backups of `second` are re-wrapped, the older one of `first` alone is not.
      expectOk(await d.cli(['Set-BackupShare', '-EncryptionCertPath', last.cer, ...pfxArgs(last)], { stdin: `${last.password}\n` }));
      const r = expectOk(
        await d.cli(['Update-BackupEncryption', ...pfxArgs(second), '-Confirm:$false'], { stdin: `${second.password}\n` }),
      );
      expect(list(r.json).map((b) => b.Name)).toEqual([forBoth.Name]);
      expect(r.stderr).toMatch(new RegExp(`store stays encrypted for [0-9A-F]{40} too: backup ${forFirst.Name} was not re-wrapped`));
      await restores(d, forFirst.Name, first, before);
      await restores(d, forBoth.Name, last, before);
    }));
});
