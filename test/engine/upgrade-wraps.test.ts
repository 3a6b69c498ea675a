import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, expectOk, fingerprint, list, runCli, warningsIn } from '../support/cli.js';
import { OLD_VERSIONS, type OldBuild, oldBuild, oldHistoryMissing } from '../support/old-build.js';
import { readCertificateFile } from '../../src/crypto/certificate.js';
import { wrapFor } from '../../src/crypto/recipient.js';
import { parseRepositoryConfig, REPOSITORY_CONFIG_FILE, serializeRepositoryConfig } from '../../src/repository/repository-config.js';

/**
 * A certificate-mode share and home made by a version before config.xml's wraps were sealed
 * (WrapsMac), then used by this one. The backup host cannot unwrap a wrap to check it; the seal is
 * what lets it see that a writer of the share put a wrap of nothing in place of the break-glass
 * certificate's. A store made before has no seal, and only a .pfx given once
 * (Set-BackupShare -DecryptionCertPath) writes one: the upgraded host must say so, or it goes on
 * adding backups to a store whose wraps nobody can vouch for, as the old version did.
 */

const missing = oldHistoryMissing();

interface Made {
  cer: string;
  pfx: string;
  password: string;
}

describe.skipIf(missing)(`certificate-mode store made before WrapsMac (${missing ?? OLD_VERSIONS.beforeWrapsMac.slice(0, 12)})`, () => {
  let old: OldBuild;
  let root: string;
  let home: string;
  let share: string;
  let files: string;
  let ops: Made;
  let glass: Made;
  let picture: string;
  const configFile = () => path.join(share, 'AzsRepository', REPOSITORY_CONFIG_FILE);
  const pfxArgs = (c: Made) => ['-DecryptionCertPath', c.pfx, '-DecryptionCertPassword', '-'];

  beforeAll(async () => {
    old = await oldBuild(OLD_VERSIONS.beforeWrapsMac);
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-upgrade-wraps-'));
    home = path.join(root, 'home');
    share = path.join(root, 'share');
    files = path.join(root, 'files');
    await fs.mkdir(share);
    await fs.mkdir(files);
    await fs.writeFile(path.join(files, 'ca.key'), randomBytes(50_000), { mode: 0o600 });
    await fs.writeFile(path.join(files, 'cloud.json'), '{"region":"local"}');
    picture = fingerprint(files);
    const made = async (name: string): Promise<Made> => {
      const m = { cer: path.join(root, `${name}.cer`), pfx: path.join(root, `${name}.pfx`), password: `${name}-password` };
      expectOk(
        await old.cli(home, ['New-EncryptionKey', '-Certificate', '-CertificatePath', m.cer, '-PfxPath', m.pfx, '-PfxPassword', '-'], {
          stdin: `${m.password}\n`,
        }),
      );
      return m;
    };
    ops = await made('ops');
    glass = await made('glass');
    // As the operator's guide of that version had it: both certificates, each .pfx given once.
    const certs = ['-EncryptionCertPath', `${ops.cer},${glass.cer}`];
    expectOk(await old.cli(home, ['Set-BackupShare', '-Path', share, ...certs, ...pfxArgs(ops)], { stdin: `${ops.password}\n` }));
    expectOk(await old.cli(home, ['Set-BackupShare', ...certs, ...pfxArgs(glass)], { stdin: `${glass.password}\n` }));
    expectOk(await old.cli(home, ['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', files]));
    expectOk(await old.cli(home, ['Start-InfrastructureBackup']), 'the old version makes the store');
    expect(await fs.readFile(configFile(), 'utf8')).not.toContain('WrapsMac');
  }, 180_000);
  afterAll(async () => root && fs.rm(root, { recursive: true, force: true }));

  /** What a writer of the share can do: wrap a master key of its own for the break-glass .cer, in place of the real wrap. */
  async function spoilBreakGlassWrap(): Promise<void> {
    const config = parseRepositoryConfig(await fs.readFile(configFile(), 'utf8'));
    const cert = await readCertificateFile(glass.cer);
    const forged = wrapFor({ kind: 'Certificate', thumbprint: cert.thumbprint, publicKeyPem: cert.publicKeyPem }, randomBytes(32), 'x');
    const recipients = config.recipients.map((w) =>
      w.id.toUpperCase() === cert.thumbprint.toUpperCase() ? { ...w, value: forged.value } : w,
    );
    await fs.writeFile(configFile(), serializeRepositoryConfig({ ...config, recipients }));
  }

  async function restoresWith(cert: Made, name: string): Promise<CliResult> {
    await fs.rm(files, { recursive: true, force: true });
    const fresh = await fs.mkdtemp(path.join(root, 'fresh-'));
    return runCli(fresh, ['Restore-AzsBackup', '-Name', name, '-Path', share, ...pfxArgs(cert), '-Confirm:$false'], {
      stdin: `${cert.password}\n`,
    });
  }

  it('the first backup of the upgraded host says that the wraps are not sealed and that the .pfx given once seals them', async () => {
    const r = expectOk(await runCli(home, ['Start-InfrastructureBackup']));
    expect(warningsIn(r).join('\n')).toMatch(/not sealed[\s\S]*Set-BackupShare -DecryptionCertPath/);
    // A scheduled backup's warnings reach nobody: the alert is what the operator reads.
    const alerts = list(expectOk(await runCli(home, ['Get-BackupAlert'])).json);
    const alert = alerts.find((a) => a.BackupName === r.json.Name);
    expect(alert).toMatchObject({ AlertType: 'BackupGeneral', Status: 'Active' });
    expect(alert.Description).toMatch(/not sealed[\s\S]*Set-BackupShare -DecryptionCertPath/);
    // It still went into the store (a full copy each time would fill the share of every upgraded machine).
    const stamp = (await fs.readdir(path.join(share, 'MASBackup'))).sort().at(-1)!;
    expect((await fs.readdir(path.join(share, 'MASBackup', stamp, r.json.Name))).sort()).toEqual(['BackupInfo.xml', 'Files.azscat']);
  });

  it('once the operator gives the .pfx, a break-glass wrap replaced on the share is seen: the backup is a full copy the break-glass .pfx restores', async () => {
    expectOk(await runCli(home, ['Set-BackupShare', ...pfxArgs(ops)], { stdin: `${ops.password}\n` }));
    expect(await fs.readFile(configFile(), 'utf8')).toContain('WrapsMac');
    expect(warningsIn(expectOk(await runCli(home, ['Start-InfrastructureBackup'])))).toEqual([]);
    expect(list(expectOk(await runCli(home, ['Get-BackupAlert'])).json).filter((a) => a.Status === 'Active')).toEqual([]);

    await spoilBreakGlassWrap();
    const r = expectOk(await runCli(home, ['Start-InfrastructureBackup']));
    expect(warningsIn(r).join('\n')).toMatch(/changed by someone without its keys/);
    expectOk(await restoresWith(glass, r.json.Name), 'Restore-AzsBackup with the break-glass .pfx');
    expect(fingerprint(files)).toBe(picture);
  });
});
