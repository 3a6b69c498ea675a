import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, freshHome, makeDrill, runCli, type CliResult, type Drill, warningsIn } from '../support/cli.js';
import { list } from '../support/smb-drill.js';
import { readCertificateFile } from '../../src/crypto/certificate.js';
import { wrapFor } from '../../src/crypto/recipient.js';
import { repositoryForBackup } from '../../src/engine/repository-access.js';
import { hostKeysOf } from '../../src/repository/keys.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import {
  createRepository,
  parseRepositoryConfig,
  REPOSITORY_CONFIG_FILE,
  serializeRepositoryConfig,
  type RepositoryConfig,
} from '../../src/repository/repository-config.js';
import { openTarget } from '../../src/targets/index.js';

/**
 * The wraps of the share's store (AzsRepository/config.xml) say for whom its master key is wrapped,
 * and the backup host, which holds no private key, cannot unwrap one to check it. Anyone who can
 * write to the share can wrap a master key of their own for a public .cer: with a wrap of nothing
 * put in place of the break-glass certificate's, the host took the store as restorable by both
 * certificates and kept adding backups to it, which the break-glass .pfx then could not restore,
 * while every check with the operations .pfx passed. The wraps carry a MAC under a key of the host
 * secret: a backup beside wraps without it is a full copy, which every certificate opens, and says so.
 */

interface Made {
  cer: string;
  pfx: string;
  password: string;
}

const pfxArgs = (c: Made) => ['-DecryptionCertPath', c.pfx, '-DecryptionCertPassword', '-'];

describe("the store's wraps, changed on the share by someone without its keys", () => {
  let d: Drill;
  let ops: Made;
  let breakGlass: Made;
  let files: string;
  const configFile = () => path.join(d.share, 'AzsRepository', REPOSITORY_CONFIG_FILE);

  /** What a writer of the share can do: wrap a master key of its own for the break-glass .cer, in place of the real wrap. */
  async function spoilBreakGlassWrap(change: (c: RepositoryConfig) => RepositoryConfig = (c) => c): Promise<void> {
    const config = parseRepositoryConfig(await fs.readFile(configFile(), 'utf8'));
    const glass = await readCertificateFile(breakGlass.cer);
    const forged = wrapFor({ kind: 'Certificate', thumbprint: glass.thumbprint, publicKeyPem: glass.publicKeyPem }, randomBytes(32), 'x');
    const recipients = config.recipients.map((w) =>
      w.id.toUpperCase() === glass.thumbprint.toUpperCase() ? { ...w, value: forged.value } : w,
    );
    expect(recipients).not.toEqual(config.recipients);
    await fs.writeFile(configFile(), serializeRepositoryConfig(change({ ...config, recipients })));
  }

  async function restoresWith(cert: Made, name: string): Promise<CliResult> {
    await fs.rm(d.files, { recursive: true, force: true });
    return runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', name, '-Path', d.share, ...pfxArgs(cert), '-Confirm:$false'], {
      stdin: `${cert.password}\n`,
    });
  }

  beforeAll(async () => {
    d = await makeDrill({ encryption: 'certificate', roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    files = fingerprint(d.files);
    ops = { cer: d.cer!, pfx: d.pfx!, password: d.pfxPassword! };
    const cer = path.join(d.root, 'break-glass.cer');
    const pfx = path.join(d.root, 'break-glass.pfx');
    expectOk(
      await d.cli(['New-EncryptionKey', '-Certificate', '-CertificatePath', cer, '-PfxPath', pfx, '-PfxPassword', '-'], {
        stdin: 'glass-password\n',
      }),
    );
    breakGlass = { cer, pfx, password: 'glass-password' };
    // The operations .pfx was given when the drill set the share up; the break-glass one is given now,
    // so that backups carry a proof for each.
    expectOk(
      await runCli(d.home, ['Set-BackupShare', '-EncryptionCertPath', `${ops.cer},${breakGlass.cer}`, ...pfxArgs(breakGlass)], {
        stdin: `${breakGlass.password}\n`,
      }),
    );
    // The first backup makes the store, wrapped for both.
    await d.backup();
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('a backup beside a spoiled break-glass wrap is a full copy that the break-glass .pfx restores, and an alert says why', async () => {
    await spoilBreakGlassWrap();
    const r = expectOk(await d.cli(['Start-InfrastructureBackup']));
    expect(warningsIn(r).join('\n')).toMatch(/were changed by someone without its keys, so this backup is a full copy/);
    const backup = r.json;
    const alerts = list(expectOk(await d.cli(['Get-BackupAlert'])).json);
    expect(alerts).toContainEqual(expect.objectContaining({ AlertType: 'BackupGeneral', Status: 'Active', BackupName: backup.Name }));
    expect(alerts.find((a) => a.BackupName === backup.Name).Description).toMatch(/changed by someone without its keys/);

    const restored = expectOk(await restoresWith(breakGlass, backup.Name), 'Restore-AzsBackup with the break-glass .pfx');
    expect(list(restored.json).map((x) => x.Authenticity)).toEqual(['Certificate']);
    expect(fingerprint(d.files)).toBe(files);
  });

  it('taking the seal away as well is seen the same way', async () => {
    await spoilBreakGlassWrap(({ wrapsMac: _mac, ...rest }) => rest);
    expect(await fs.readFile(configFile(), 'utf8')).not.toContain('WrapsMac');
    const r = expectOk(await d.cli(['Start-InfrastructureBackup']));
    expect(warningsIn(r).join('\n')).toMatch(/were changed by someone without its keys/);
    expectOk(await restoresWith(breakGlass, r.json.Name), 'Restore-AzsBackup with the break-glass .pfx');
    expect(fingerprint(d.files)).toBe(files);
  });

  it('Set-BackupShare with the operations .pfx writes the wraps again: backups go into the store and either .pfx restores them', async () => {
    expectOk(await runCli(d.home, ['Set-BackupShare', ...pfxArgs(ops)], { stdin: `${ops.password}\n` }));
    const r = expectOk(await d.cli(['Start-InfrastructureBackup']));
    expect(warningsIn(r)).toEqual([]);
    expect((await fs.readdir(await d.backupFolder(r.json.Name))).sort()).toEqual(['BackupInfo.xml', 'Files.azscat']);
    for (const cert of [breakGlass, ops]) {
      expectOk(await restoresWith(cert, r.json.Name), `Restore-AzsBackup with ${path.basename(cert.pfx)}`);
      expect(fingerprint(d.files)).toBe(files);
    }
  });
});

describe('a store made before its wraps were sealed', () => {
  it('is used as before by a machine that never saw it sealed, and from the first seal on, one without it is refused', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-wraps-'));
    try {
      const target = openTarget(dir);
      const layout = new RepositoryLayout();
      const key = { kind: 'Key' as const, keyId: 'k1', key: randomBytes(32) };
      const { config, master } = await createRepository(target, layout, [key]);
      expect(config.wrapsMac).toBeDefined();
      const host = { id: config.id, ...hostKeysOf(master!) };
      const file = path.join(dir, layout.root, REPOSITORY_CONFIG_FILE);
      // As an earlier version wrote it.
      const { wrapsMac, ...unsealed } = config;
      await fs.writeFile(file, serializeRepositoryConfig(unsealed));
      const legacy = await repositoryForBackup(target, [key], host);
      expect(legacy.fullCopyBecause).toBeUndefined();
      expect(legacy.repository?.id).toBe(config.id);
      expect(legacy.remember).toBeUndefined();

      // Sealed again (by Update-BackupEncryption, say): the host notes it, and from then on trusts no unsealed file.
      await fs.writeFile(file, serializeRepositoryConfig(config));
      const sealed = await repositoryForBackup(target, [key], host);
      expect(sealed.repository?.id).toBe(config.id);
      expect(sealed.remember?.wrapsSealed).toBe(true);
      await fs.writeFile(file, serializeRepositoryConfig(unsealed));
      const stripped = await repositoryForBackup(target, [key], sealed.remember);
      expect(stripped.repository).toBeUndefined();
      expect(stripped.wrapsTampered).toBe(true);
      expect(wrapsMac).toHaveLength(32);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Update-BackupEncryption beside wraps changed on the share (symmetric key)', () => {
  let d: Drill;
  afterAll(async () => d?.cleanup());

  it('writes them again, sealed, with the old key it is given: backups go into the store again', async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    await d.backup();
    const configFile = path.join(d.share, 'AzsRepository', REPOSITORY_CONFIG_FILE);
    const { wrapsMac: _mac, ...unsealed } = parseRepositoryConfig(await fs.readFile(configFile, 'utf8'));
    // Its wraps as they were, the seal taken away: this host has seen them sealed.
    await fs.writeFile(configFile, serializeRepositoryConfig(unsealed));
    expect(warningsIn(expectOk(await d.cli(['Start-InfrastructureBackup']))).join('\n')).toMatch(/changed by someone without its keys/);

    expectOk(await d.cli(['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${d.key}\n` }));
    expect(parseRepositoryConfig(await fs.readFile(configFile, 'utf8')).wrapsMac).toBeDefined();
    const after = expectOk(await d.cli(['Start-InfrastructureBackup']));
    expect(warningsIn(after)).toEqual([]);
    expect((await fs.readdir(await d.backupFolder(after.json.Name))).sort()).toEqual(['BackupInfo.xml', 'Files.azscat']);
  });
});
