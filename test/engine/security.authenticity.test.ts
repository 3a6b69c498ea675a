import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, freshHome, makeDrill, runCli, type Drill, warningsIn } from '../support/cli.js';
import { forgeBackup, tarOf, type ForgedRole } from '../support/forger.js';

/**
 * Issue 17.1, from the attacker's side: someone who can write to the share and holds the public
 * .cer (public by design) writes a well-formed backup. Restoring it must never let them decide what
 * runs or where data goes on the restoring machine; only a backup made by a holder of the secret
 * the .pfx yields restores, unless the operator loudly asks otherwise.
 */

describe('a backup forged by a share writer who holds only the public certificate', () => {
  let d: Drill;
  let victim: string;
  let pwned: string;
  let planted: string;
  let roles: ForgedRole[];
  const pfxArgs = () => ['-DecryptionCertPath', d.pfx!, '-DecryptionCertPassword', '-'];
  const pfxStdin = () => `${d.pfxPassword}\n`;

  beforeAll(async () => {
    d = await makeDrill({ encryption: 'certificate' });
    await d.backup();
    victim = path.join(d.root, 'victim');
    await fs.mkdir(victim);
    await fs.writeFile(path.join(victim, 'config.json'), "the operator's own file");
    pwned = path.join(d.root, 'pwned');
    planted = path.join(d.root, 'attacker-tree');
    await fs.mkdir(planted);
    await fs.writeFile(path.join(planted, 'authorized_keys'), 'ssh-ed25519 AAAA attacker');
    roles = [
      {
        name: 'Evil',
        definitionXml: `<Definition Provider="command" RestoreOrder="10"><ExportCommand><Arg>/bin/true</Arg></ExportCommand><ImportCommand><Arg>/usr/bin/tee</Arg><Arg>${pwned}</Arg></ImportCommand></Definition>`,
        data: Buffer.from('ran as the restoring user\n'),
      },
      {
        name: 'Files',
        definitionXml: `<Definition Provider="directory" RestoreOrder="20"><Path>${victim}</Path></Definition>`,
        data: await tarOf(planted),
      },
    ];
  });
  afterAll(async () => d?.cleanup());

  for (const formatVersion of [1, 2] as const) {
    it(`format ${formatVersion}: a fresh machine refuses to restore it, and nothing it records runs or is written`, async () => {
      const { name } = await forgeBackup({ share: d.share, cerPath: d.cer!, roles, formatVersion });
      const before = fingerprint(victim);
      const restore = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', name, '-Path', d.share, ...pfxArgs()], {
        stdin: pfxStdin(),
      });
      expect(restore.code, restore.stderr).toBe(12);
      expect(restore.errors[0]?.ErrorId).toBe('BackupNotAuthenticated');
      expect(existsSync(pwned)).toBe(false);
      expect(fingerprint(victim)).toBe(before);

      const keyed = await d.cli(['Test-InfrastructureBackup', '-Name', name, ...pfxArgs()], { stdin: pfxStdin() });
      expect(keyed.code).toBe(12);
      expect(keyed.json.IsValid).toBe(false);
      expect(keyed.json.Files[0].Message).toMatch(/no proof/);
    });
  }

  it('its bytes are intact, and the keyless check says that this is all it proves', async () => {
    const { name } = await forgeBackup({ share: d.share, cerPath: d.cer!, roles, formatVersion: 2 });
    const keyless = expectOk(await d.cli(['Test-InfrastructureBackup', '-Name', name]));
    expect(keyless.json.IsValid).toBe(true);
    expect(keyless.json.Authenticity).toBe('NotChecked');
    expect(keyless.json.Checked).toMatch(/not forgery/);
  });

  it('the authenticator of a genuine backup, pasted into a forged one, does not make it restore', async () => {
    const genuine = await d.backup();
    const genuineXml = await fs.readFile(path.join(await d.backupFolder(genuine.Name), 'BackupInfo.xml'), 'utf8');
    const authenticator = /<Authenticator [^>]*\/>/.exec(genuineXml)![0];
    const { name, folder } = await forgeBackup({ share: d.share, cerPath: d.cer!, roles, formatVersion: 2 });
    const file = path.join(folder, 'BackupInfo.xml');
    const forged = await fs.readFile(file, 'utf8');
    await fs.writeFile(file, forged.replace(/"\/>\n<\/BackupInfo>\n$/, `">\n    ${authenticator}\n  </Seal>\n</BackupInfo>\n`));
    const restore = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', name, '-Path', d.share, ...pfxArgs()], {
      stdin: pfxStdin(),
    });
    expect(restore.code, restore.stderr).toBe(12);
    expect(restore.errors[0]?.ErrorId).toBe('BackupInfoTampered');
    expect(existsSync(pwned)).toBe(false);
  });

  it('only -AllowUnauthenticated restores it, with a warning and Authenticity Unauthenticated on every result', async () => {
    const { name } = await forgeBackup({ share: d.share, cerPath: d.cer!, roles: [roles[0]!], formatVersion: 1 });
    const restore = expectOk(
      await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', name, '-Path', d.share, ...pfxArgs(), '-AllowUnauthenticated'], {
        stdin: pfxStdin(),
      }),
    );
    // The forged file is well formed: what refused it above was the missing proof, nothing else.
    expect(await fs.readFile(pwned, 'utf8')).toBe('ran as the restoring user\n');
    expect([restore.json].flat().map((r: any) => r.Authenticity)).toEqual(['Unauthenticated']);
    expect(warningsIn(restore).join('\n')).toMatch(/without proof of who made it/);
    await fs.rm(pwned);
  });

  it('on a machine that registered the role itself, even -AllowUnauthenticated follows its registration, not the backup', async () => {
    const { name } = await forgeBackup({ share: d.share, cerPath: d.cer!, roles: [roles[1]!], formatVersion: 2 });
    const before = fingerprint(victim);
    const restore = expectOk(
      await d.cli(['Restore-AzsBackup', '-Name', name, ...pfxArgs(), '-AllowUnauthenticated', '-Confirm:$false'], { stdin: pfxStdin() }),
    );
    const [result] = [restore.json].flat();
    expect(result.DefinitionSource).toBe('Registered');
    expect(result.Destination).toBe(d.files);
    expect(result.DefinitionDifference).toContain(`path: ${d.files} (backup: ${victim})`);
    expect(warningsIn(restore).some((w) => w.includes('as this machine registered it'))).toBe(true);
    expect(fingerprint(victim)).toBe(before);
  });
});

describe('what the service made restores, and proves it', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'certificate' });
  });
  afterAll(async () => d?.cleanup());

  it('a fresh machine with the share, the .pfx and its password restores with Authenticity Certificate', async () => {
    const b = await d.backup();
    const before = fingerprint(d.files);
    await fs.rm(d.files, { recursive: true });
    const { args, stdin } = d.decryptArgs();
    const restore = expectOk(
      await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', b.Name, '-Path', d.share, ...args], { stdin }),
    );
    const results = [restore.json].flat();
    expect(results.map((r: any) => r.Authenticity)).toEqual(results.map(() => 'Certificate'));
    expect(results.map((r: any) => r.DefinitionSource)).toEqual(results.map(() => 'Backup'));
    expect(fingerprint(d.files)).toBe(before);
    // Nothing of its authenticity is warned of (only what the fresh machine lacks for its next backup).
    expect(warningsIn(restore).filter((w) => !/^No backup share is configured|not registered on this machine/.test(w))).toEqual([]);
  });

  it('a backup moved into another stamp folder is refused, with the key as with the certificate', async () => {
    const b = await d.backup();
    const folder = await d.backupFolder(b.Name);
    const elsewhere = path.join(d.share, 'MASBackup', '20991231T235959Z', b.Name);
    await fs.mkdir(path.dirname(elsewhere), { recursive: true });
    await fs.rename(folder, elsewhere);
    const { args, stdin } = d.decryptArgs();
    const restore = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', b.Name, '-Path', d.share, ...args], { stdin });
    expect(restore.code).toBe(12);
    expect(restore.errors[0]?.Message).toMatch(/stamp folder 20991231T235959Z/);
    const check = await d.cli(['Test-InfrastructureBackup', '-Name', b.Name]);
    expect(check.code).toBe(12);

    const k = await makeDrill({ encryption: 'key', roles: false });
    try {
      await k.register('Files', ['-Provider', 'directory', '-Path', k.files]);
      const kb = await k.backup();
      const moved = path.join(k.share, 'MASBackup', '20000101T000000Z', kb.Name);
      await fs.mkdir(path.dirname(moved), { recursive: true });
      await fs.rename(await k.backupFolder(kb.Name), moved);
      const kr = await runCli(await freshHome(k), ['Restore-AzsBackup', '-Name', kb.Name, '-Path', k.share, '-EncryptionKey', '-'], {
        stdin: `${k.key}\n`,
      });
      expect(kr.code).toBe(12);
      expect(kr.errors[0]?.ErrorId).toBe('BackupInfoTampered');
    } finally {
      await k.cleanup();
    }
  });

  it("Set-BackupShare refuses a .pfx that is not the encryption certificate's", async () => {
    const other = path.join(d.root, 'other');
    await fs.mkdir(other);
    expectOk(
      await d.cli(
        [
          'New-EncryptionKey',
          '-Certificate',
          '-CertificatePath',
          path.join(other, 'o.cer'),
          '-PfxPath',
          path.join(other, 'o.pfx'),
          '-PfxPassword',
          '-',
        ],
        { stdin: 'other-password\n' },
      ),
    );
    const r = await d.cli(
      [
        'Set-BackupShare',
        '-EncryptionCertPath',
        d.cer!,
        '-DecryptionCertPath',
        path.join(other, 'o.pfx'),
        '-DecryptionCertPassword',
        '-',
        '-SkipValidation',
      ],
      { stdin: 'other-password\n' },
    );
    expect(r.code).toBe(2);
    expect(r.errors[0]?.ErrorId).toBe('DecryptionCertificateMismatch');
    const config = JSON.parse(await fs.readFile(path.join(d.home, 'config.json'), 'utf8'));
    expect(config.encryption.certificates[0].authenticationSecret).toBeDefined();
    expect(JSON.stringify(config)).not.toContain('PRIVATE KEY');
  });
});

describe('a share whose certificate was configured without its .pfx (as before authentication existed)', () => {
  it('is told so, its backups restore only when asked loudly, and one Update-BackupEncryption makes them authenticated', async () => {
    const d = await makeDrill({ encryption: 'certificate', roles: false });
    try {
      await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
      // Given again, the same .cer keeps what its .pfx proved; configured afresh without the .pfx, it has nothing to prove with.
      expectOk(await d.cli(['Clear-BackupConfiguration', '-Confirm:$false']));
      const setOnlyCer = expectOk(await d.cli(['Set-BackupShare', '-Path', d.share, '-EncryptionCertPath', d.cer!, '-SkipValidation']));
      expect(warningsIn(setOnlyCer).join()).toMatch(/configured without its \.pfx/);
      const made = expectOk(await d.cli(['Start-InfrastructureBackup']));
      expect(warningsIn(made).join()).toMatch(/cannot prove/);
      const name = made.json.Name;
      const { args, stdin } = d.decryptArgs();
      const refused = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', name, '-Path', d.share, ...args], { stdin });
      expect(refused.code).toBe(12);
      expect(refused.errors[0]?.ErrorId).toBe('BackupNotAuthenticated');
      expect(refused.errors[0]?.RecommendedAction).toMatch(/-AllowUnauthenticated/);

      // The migration: prove the certificate once, then re-seal what the operator knows is theirs.
      expectOk(await d.cli(['Set-BackupShare', ...args, '-SkipValidation'], { stdin }));
      const notAsked = await d.cli(['Update-BackupEncryption', ...args, '-Confirm:$false'], { stdin });
      expect(notAsked.code).toBe(12);
      const resealed = expectOk(await d.cli(['Update-BackupEncryption', ...args, '-AllowUnauthenticated', '-Confirm:$false'], { stdin }));
      expect([resealed.json].flat().map((b: any) => b.Name)).toEqual([name]);
      expect(warningsIn(resealed).join()).toMatch(/re-sealed anyway/);
      const restored = expectOk(
        await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', name, '-Path', d.share, ...args], { stdin }),
      );
      expect([restored.json].flat()[0].Authenticity).toBe('Certificate');
    } finally {
      await d.cleanup();
    }
  });
});
