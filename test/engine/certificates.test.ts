import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, freshHome, makeDrill, runCli, type Drill, warningsIn } from '../support/cli.js';
import { list } from '../support/smb-drill.js';

/**
 * Several encryption certificates (an operations certificate and a break-glass one kept in a safe):
 * Set-BackupShare -EncryptionCertPath takes them all, every backup's data key is wrapped for each,
 * and the .pfx of any one alone restores it on a fresh machine; Get-BackupConfiguration lists them
 * with their expiry; a bad list changes nothing; CertificateExpiring looks at each.
 */

interface Made {
  cer: string;
  pfx: string;
  password: string;
  Thumbprint: string;
  NotAfter: string;
}

async function newCertificate(d: Drill, name: string, validityDays = 365): Promise<Made> {
  const cer = path.join(d.root, `${name}.cer`);
  const pfx = path.join(d.root, `${name}.pfx`);
  const password = `${name}-password`;
  const made = expectOk(
    await d.cli(
      [
        'New-EncryptionKey',
        '-Certificate',
        '-CertificatePath',
        cer,
        '-PfxPath',
        pfx,
        '-PfxPassword',
        '-',
        '-ValidityDays',
        String(validityDays),
      ],
      { stdin: `${password}\n` },
    ),
    `New-EncryptionKey -Certificate (${name})`,
  ).json;
  return { cer, pfx, password, Thumbprint: made.Thumbprint, NotAfter: made.NotAfter };
}

const pfxArgs = (c: { pfx: string }) => ['-DecryptionCertPath', c.pfx, '-DecryptionCertPassword', '-'];

describe('an operations certificate and a break-glass certificate', () => {
  let d: Drill;
  let ops: Made;
  let breakGlass: Made;
  let before: string;
  let older: { Name: string };

  beforeAll(async () => {
    d = await makeDrill({ encryption: 'certificate', roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    before = fingerprint(d.files);
    const config = list(expectOk(await d.cli(['Get-BackupConfiguration'])).json)[0];
    ops = {
      cer: d.cer!,
      pfx: d.pfx!,
      password: d.pfxPassword!,
      Thumbprint: config.EncryptionCertThumbprint,
      NotAfter: config.EncryptionCertExpiry,
    };
    breakGlass = await newCertificate(d, 'break-glass');
    // Made for the operations certificate alone, before the break-glass one was added.
    older = await d.backup();
  });
  afterAll(async () => d?.cleanup());

  it('Set-BackupShare takes both, keeps what the operations .pfx proved, and warns of the backups made before', async () => {
    // One list given once (comma-separated, relative paths resolve element by element), the break-glass .pfx given with it.
    const r = expectOk(
      await runCli(
        d.home,
        ['Set-BackupShare', '-EncryptionCertPath', `${ops.cer},${path.relative(process.cwd(), breakGlass.cer)}`, ...pfxArgs(breakGlass)],
        { stdin: `${breakGlass.password}\n` },
      ),
      'Set-BackupShare (two certificates)',
    );
    const warnings = warningsIn(r).join('\n');
    expect(warnings).not.toMatch(/configured without its \.pfx/);
    expect(warnings).toMatch(new RegExp(`1 backup on the share is not encrypted for ${breakGlass.Thumbprint}.*Update-BackupEncryption`));

    const location = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
    expect(location.EncryptionMode).toBe('Certificate');
    expect(location.EncryptionCertificates).toEqual([
      expect.objectContaining({ Thumbprint: ops.Thumbprint, NotAfter: ops.NotAfter, Authenticated: true }),
      expect.objectContaining({ Thumbprint: breakGlass.Thumbprint, NotAfter: breakGlass.NotAfter, Authenticated: true }),
    ]);
    expect(location.EncryptionCertificates[1].Subject).toMatch(/^CN=/);
    // The SPEC's single fields keep naming one certificate: the first.
    expect([location.EncryptionCertThumbprint, location.EncryptionCertExpiry]).toEqual([ops.Thumbprint, ops.NotAfter]);
    const table = expectOk(await d.cli(['Get-BackupConfiguration', '--output', 'list'])).stdout;
    expect(table).toContain(breakGlass.Thumbprint);
  });

  it("the share's store, made for the operations certificate, is wrapped for the break-glass one once a .pfx that opens it is given", async () => {
    // Backups keep their data in the store, and only a holder of a .pfx it opens can add a certificate to it.
    const before = expectOk(await d.cli(['Start-InfrastructureBackup']));
    expect(warningsIn(before).join('\n')).toMatch(new RegExp(`store is not encrypted for ${breakGlass.Thumbprint}.*-DecryptionCertPath`));
    const given = expectOk(await runCli(d.home, ['Set-BackupShare', ...pfxArgs(ops)], { stdin: `${ops.password}\n` }));
    expect(warningsIn(given).join('\n')).toMatch(new RegExp(`store is now encrypted for ${breakGlass.Thumbprint} too`));
    expect(warningsIn(expectOk(await d.cli(['Start-InfrastructureBackup'])))).toEqual([]);
  });

  it('a backup made now restores on a fresh machine with either .pfx alone, authenticated', async () => {
    const b = await d.backup();
    const info = await fs.readFile(path.join(await d.backupFolder(b.Name), 'BackupInfo.xml'), 'utf8');
    expect(info.match(/<Recipient /g)).toHaveLength(2);
    for (const cert of [breakGlass, ops]) {
      await fs.rm(d.files, { recursive: true });
      const restored = expectOk(
        await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', b.Name, '-Path', d.share, ...pfxArgs(cert), '-Confirm:$false'], {
          stdin: `${cert.password}\n`,
        }),
        `Restore-AzsBackup with ${path.basename(cert.pfx)}`,
      );
      expect(list(restored.json).map((x) => x.Authenticity)).toEqual(['Certificate']);
      expect(fingerprint(d.files)).toBe(before);
    }
  });

  it('Update-BackupEncryption re-wraps the older backup for both, so the break-glass .pfx opens it too', async () => {
    const test = async (cert: Made) =>
      runCli(await freshHome(d), ['Test-InfrastructureBackup', '-Name', older.Name, '-Path', d.share, ...pfxArgs(cert)], {
        stdin: `${cert.password}\n`,
      });
    expect((await test(breakGlass)).errors[0]?.ErrorId).toBe('WrongDecryptionMaterial');
    const r = expectOk(
      await d.cli(['Update-BackupEncryption', '-Name', older.Name, ...pfxArgs(ops), '-Confirm:$false'], { stdin: `${ops.password}\n` }),
    );
    expect(list(r.json).map((x) => x.Name)).toEqual([older.Name]);
    for (const cert of [breakGlass, ops]) expect(expectOk(await test(cert)).json).toMatchObject({ IsValid: true, Mode: 'Authenticated' });
  });

  it('bad input is refused with a clear error and leaves the configuration as it was', async () => {
    const config = path.join(d.home, 'config.json');
    const was = await fs.readFile(config, 'utf8');
    const notACertificate = path.join(d.root, 'notes.cer');
    await fs.writeFile(notACertificate, 'these are notes, not a certificate\n');
    const copy = path.join(d.root, 'copy-of-ops.cer');
    await fs.copyFile(ops.cer, copy);
    const stranger = await newCertificate(d, 'stranger');
    // One file holding both certificates (a PEM bundle, or the .cer files run together): the first
    // alone was configured, without a word, and the other's .pfx restored none of the backups.
    const pem = async (c: { cer: string }) => new X509Certificate(await fs.readFile(c.cer)).toString();
    const bundle = path.join(d.root, 'both.pem');
    await fs.writeFile(bundle, `${await pem(ops)}${await pem(breakGlass)}`);
    const runTogether = path.join(d.root, 'both.cer');
    await fs.writeFile(runTogether, Buffer.concat([await fs.readFile(ops.cer), await fs.readFile(breakGlass.cer)]));
    const cases: [string[], string, RegExp, string?][] = [
      [['-EncryptionCertPath', bundle], 'SeveralCertificatesInFile', /both\.pem' holds 2 certificates/],
      [['-EncryptionCertPath', runTogether], 'SeveralCertificatesInFile', /both\.cer' holds more than one certificate/],
      [
        ['-EncryptionCertPath', `${ops.cer},${path.join(d.root, 'missing.cer')}`],
        'CertificateFileNotFound',
        /missing\.cer' does not exist/,
      ],
      [['-EncryptionCertPath', `${ops.cer},${notACertificate}`], 'NotACertificate', /notes\.cer' is not an X\.509 certificate/],
      [['-EncryptionCertPath', `${ops.cer},${breakGlass.cer},${copy}`], 'DuplicateCertificate', new RegExp(`${ops.Thumbprint} twice`)],
      [
        ['-EncryptionCertPath', `${ops.cer},${breakGlass.cer}`, ...pfxArgs(stranger)],
        'DecryptionCertificateMismatch',
        /not any of the encryption certificates/,
        stranger.password,
      ],
      [['-EncryptionCertPath', ops.cer, '-EncryptionCertPath', ''], 'ParameterArgumentValidationError', /empty element/],
    ];
    for (const [args, errorId, message, password] of cases) {
      const r = await d.cli(['Set-BackupShare', ...args, '-SkipValidation'], { stdin: password ? `${password}\n` : '' });
      expect(r.code, r.stderr).toBe(2);
      expect(r.errors[0]?.ErrorId).toBe(errorId);
      expect(r.errors[0]?.Message).toMatch(message);
      expect(await fs.readFile(config, 'utf8')).toBe(was);
    }
  });

  it('CertificateExpiring names a break-glass certificate that expires soon, and closes once it is replaced', async () => {
    const soon = await newCertificate(d, 'soon', 10);
    const active = async () => list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json);
    expectOk(await d.cli(['Set-BackupShare', '-EncryptionCertPath', `${ops.cer},${soon.cer}`, '-SkipValidation']));
    const alerts = await active();
    expect(alerts.map((a) => a.AlertType)).toEqual(['CertificateExpiring']);
    expect(alerts[0].Description).toContain(soon.Thumbprint);
    expect(alerts[0].Description).not.toContain(ops.Thumbprint);
    expectOk(await d.cli(['Set-BackupShare', '-EncryptionCertPath', `${ops.cer},${breakGlass.cer}`, '-SkipValidation']));
    expect(await active()).toEqual([]);
    // The break-glass certificate left the list in between, and what its .pfx proved left with it: it is to be given again.
    const location = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
    expect(location.EncryptionCertificates.map((c: any) => c.Authenticated)).toEqual([true, false]);
  });
});

describe('a configuration written before several certificates could be configured', () => {
  it('reads as a list of its one certificate, backs up authenticated, and is written back as a list', async () => {
    const d = await makeDrill({ encryption: 'certificate', roles: false });
    try {
      await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
      const file = path.join(d.home, 'config.json');
      const config = JSON.parse(await fs.readFile(file, 'utf8'));
      const [certificate] = config.encryption.certificates;
      // The shape of before: the certificate's fields in `encryption` itself.
      await fs.writeFile(file, JSON.stringify({ ...config, encryption: { mode: 'Certificate', ...certificate } }), { mode: 0o600 });
      const location = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
      expect(location.EncryptionCertThumbprint).toBe(certificate.thumbprint);
      expect(location.EncryptionCertificates).toEqual([
        expect.objectContaining({ Thumbprint: certificate.thumbprint, Authenticated: true }),
      ]);
      const made = expectOk(await d.cli(['Start-InfrastructureBackup']), 'Start-InfrastructureBackup');
      expect(warningsIn(made)).toEqual([]);
      const b = made.json;
      const test = expectOk(
        await runCli(await freshHome(d), ['Test-InfrastructureBackup', '-Name', b.Name, '-Path', d.share, ...d.decryptArgs().args], {
          stdin: d.decryptArgs().stdin,
        }),
      ).json;
      expect(test).toMatchObject({ IsValid: true, Mode: 'Authenticated' });
      expectOk(await d.cli(['Set-BackupShare', '-BackupFrequencyInHours', '6', '-SkipValidation']));
      const written = JSON.parse(await fs.readFile(file, 'utf8'));
      expect(written.encryption).toEqual({ mode: 'Certificate', certificates: [certificate] });
    } finally {
      await d.cleanup();
    }
  });
});

// Set-BackupShare saved the new settings first and joined the share's store (re-wrapping it for
// the certificates given) after: when that step failed, the command ended in an error with the
// settings already saved, so an operator who read the error as "nothing changed" ran on with
// certificates the store was never wrapped for.
describe("Set-BackupShare whose step into the share's store fails", () => {
  it('ends in the error and leaves the configuration as it was', async () => {
    const d = await makeDrill({ encryption: 'certificate', roles: false });
    try {
      await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
      await d.backup();
      const breakGlass = await newCertificate(d, 'break-glass');
      const config = path.join(d.home, 'config.json');
      const was = await fs.readFile(config, 'utf8');
      const store = path.join(d.share, 'AzsRepository', 'config.xml');
      await fs.writeFile(store, (await fs.readFile(store, 'utf8')).slice(0, 100));
      const r = await d.cli(['Set-BackupShare', '-EncryptionCertPath', `${d.cer},${breakGlass.cer}`, ...pfxArgs({ pfx: d.pfx! })], {
        stdin: `${d.pfxPassword}\n`,
      });
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.errors[0]?.ErrorId).toMatch(/Repository/);
      expect(await fs.readFile(config, 'utf8')).toBe(was);
      expect(list(expectOk(await d.cli(['Get-BackupConfiguration'])).json)[0].EncryptionCertificates).toHaveLength(1);
    } finally {
      await d.cleanup();
    }
  });
});
