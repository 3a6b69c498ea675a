import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificate, readCertificateFile, readPfxFile, type CreatedCertificate } from '../../src/crypto/certificate.js';
import { newDataKey, unwrapWithPrivateKey, wrapForCertificate } from '../../src/crypto/key-wrap.js';
import { rejected, thrown } from '../support/errors.js';

describe('encryption certificates', () => {
  const password = 'correct horse battery staple';
  let dir: string;
  let made: CreatedCertificate;
  let cerPath: string;
  let pfxPath: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'azs-cert-'));
    made = createCertificate({ pfxPassword: password });
    cerPath = join(dir, 'backup.cer');
    pfxPath = join(dir, 'backup.pfx');
    await writeFile(cerPath, made.cer);
    await writeFile(pfxPath, made.pfx);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('describes the certificate with defaults: subject, 3072 bits, 365 days, Windows-style thumbprint', () => {
    const { info, cer } = made;
    expect(info.subject).toBe('CN=AzsBackup Encryption');
    expect(info.keySize).toBe(3072);
    expect(info.thumbprint).toBe(createHash('sha1').update(cer).digest('hex').toUpperCase());
    expect(info.thumbprint).toMatch(/^[0-9A-F]{40}$/);
    const days = (info.notAfter.getTime() - info.notBefore.getTime()) / 86_400_000;
    expect(days).toBeCloseTo(365, 0);
    expect(info.notBefore.getTime()).toBeLessThanOrEqual(Date.now());
    expect(info.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
  });

  it('is a self-signed X.509 v3 with SHA-256, the key usages and a positive serial, as OpenSSL reads it', async () => {
    const { stdout } = await execa('openssl', ['x509', '-in', cerPath, '-inform', 'DER', '-noout', '-text']);
    expect(stdout).toMatch(/Version: 3 \(0x2\)/);
    expect(stdout).toMatch(/Public-Key: \(3072 bit\)/);
    expect(stdout).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
    expect(stdout).toMatch(/CA:FALSE/);
    expect(stdout).toMatch(/Digital Signature, Key Encipherment, Data Encipherment/);
    expect(stdout).toMatch(/X509v3 Extended Key Usage/);
    expect(stdout).toMatch(/X509v3 Subject Key Identifier/);
    expect(stdout).not.toMatch(/Serial Number:\s*\(Negative\)/);
    const x509 = new X509Certificate(made.cer);
    expect(x509.issuer).toBe(x509.subject);
    expect(x509.verify(x509.publicKey)).toBe(true);
  });

  it('makes a PKCS#12 that OpenSSL opens with the password (AES-256, no RC2 or 3DES)', async () => {
    const env = { ...process.env, AZS_TEST_PFX_PASS: password };
    const info = await execa('openssl', ['pkcs12', '-in', pfxPath, '-passin', 'env:AZS_TEST_PFX_PASS', '-info', '-noout'], { env });
    const described = `${info.stdout}\n${info.stderr}`;
    expect(described).toMatch(/AES-256-CBC/);
    expect(described).not.toMatch(/RC2|3DES|TripleDES/i);
    const { stdout } = await execa('openssl', ['pkcs12', '-in', pfxPath, '-passin', 'env:AZS_TEST_PFX_PASS', '-nodes'], { env });
    expect(stdout).toMatch(/-----BEGIN PRIVATE KEY-----/);
    expect(stdout).toMatch(/-----BEGIN CERTIFICATE-----/);
    const wrong = await execa('openssl', ['pkcs12', '-in', pfxPath, '-passin', 'env:AZS_TEST_PFX_PASS', '-nodes'], {
      env: { ...process.env, AZS_TEST_PFX_PASS: 'wrong' },
      reject: false,
    });
    expect(wrong.exitCode).not.toBe(0);
  });

  it('reads the .cer (DER and PEM) and the .pfx back to the same certificate, and the pair wraps and unwraps', async () => {
    const fromDer = await readCertificateFile(cerPath);
    const pemPath = join(dir, 'backup.pem');
    await writeFile(pemPath, new X509Certificate(made.cer).toString());
    const fromPem = await readCertificateFile(pemPath);
    const fromPfx = await readPfxFile(pfxPath, password);
    for (const info of [fromDer, fromPem, fromPfx.info]) {
      expect(info.thumbprint).toBe(made.info.thumbprint);
      expect(info.subject).toBe(made.info.subject);
      expect(info.keySize).toBe(3072);
    }
    const dataKey = newDataKey();
    expect(unwrapWithPrivateKey(wrapForCertificate(dataKey, fromDer.publicKeyPem), fromPfx.privateKeyPem).equals(dataKey)).toBe(true);
  });

  it('refuses a wrong .pfx password with WrongDecryptionCertPassword, SecurityError, exit 12', async () => {
    const err = await rejected(readPfxFile(pfxPath, 'not the password'));
    expect(err.errorId).toBe('WrongDecryptionCertPassword');
    expect(err.category).toBe('SecurityError');
    expect(err.exitCode).toBe(12);
    expect(err.message).toContain(pfxPath);
    expect(err.message).not.toContain('not the password');
  });

  it('explains a missing file, a file that is not a certificate, and a .cer given as .pfx', async () => {
    const missing = await rejected(readCertificateFile(join(dir, 'nope.cer')));
    expect(missing.errorId).toBe('CertificateFileNotFound');
    const junkPath = join(dir, 'junk.cer');
    await writeFile(junkPath, 'hello, not a certificate');
    const junk = await rejected(readCertificateFile(junkPath));
    expect(junk.errorId).toBe('NotACertificate');
    expect(junk.exitCode).toBe(2);
    const pfxAsCer = await rejected(readCertificateFile(pfxPath));
    expect(pfxAsCer.errorId).toBe('NotACertificate');
    const cerAsPfx = await rejected(readPfxFile(cerPath, password));
    expect(cerAsPfx.errorId).toBe('NotAPfxFile');
    expect((await rejected(readPfxFile(join(dir, 'nope.pfx'), password))).errorId).toBe('CertificateFileNotFound');
  });

  it('accepts a custom subject, 4096 bits and validity, and refuses bad options', async () => {
    const custom = createCertificate({
      subject: 'CN=Backup Test, O=Contoso\\, Ltd, C=US',
      keySize: 4096,
      validityDays: 30,
      pfxPassword: 'x',
    });
    expect(custom.info.subject).toBe('CN=Backup Test, O=Contoso\\, Ltd, C=US');
    expect(custom.info.keySize).toBe(4096);
    expect((custom.info.notAfter.getTime() - custom.info.notBefore.getTime()) / 86_400_000).toBeCloseTo(30, 0);
    expect(thrown(() => createCertificate({ pfxPassword: '' })).errorId).toBe('PfxPasswordRequired');
    expect(thrown(() => createCertificate({ pfxPassword: 'x', keySize: 1024 as 3072 })).errorId).toBe('InvalidKeySize');
    expect(thrown(() => createCertificate({ pfxPassword: 'x', validityDays: 0 })).errorId).toBe('InvalidValidityPeriod');
    expect(thrown(() => createCertificate({ pfxPassword: 'x', subject: 'Backup' })).errorId).toBe('InvalidCertificateSubject');
    expect(thrown(() => createCertificate({ pfxPassword: 'x', subject: 'O=Contoso' })).errorId).toBe('InvalidCertificateSubject');
  });

  /** A certificate and its .pfx (under `password`) made by OpenSSL itself, with a key of `newkey`. */
  const opensslPfx = async (name: string, subject: string, newkey: string[]): Promise<{ pfx: string; certPem: string }> => {
    const keyPath = join(dir, `${name}.key`);
    const certPem = join(dir, `${name}.crt.pem`);
    const pfx = join(dir, `${name}.pfx`);
    await execa('openssl', ['req', '-x509', ...newkey, '-nodes', '-keyout', keyPath, '-out', certPem, '-subj', subject, '-days', '10']);
    await execa('openssl', ['pkcs12', '-export', '-inkey', keyPath, '-in', certPem, '-out', pfx, '-passout', 'env:AZS_TEST_PFX_PASS'], {
      env: { ...process.env, AZS_TEST_PFX_PASS: password },
    });
    return { pfx, certPem };
  };

  it('reads a .pfx made by OpenSSL itself', async () => {
    const { pfx: osslPfx, certPem } = await opensslPfx('openssl', '/CN=From OpenSSL', ['-newkey', 'rsa:3072']);
    const read = await readPfxFile(osslPfx, password);
    expect(read.info.subject).toBe('CN=From OpenSSL');
    expect(read.info.thumbprint).toBe((await readCertificateFile(certPem)).thumbprint);
    expect((await rejected(readPfxFile(osslPfx, 'bad'))).errorId).toBe('WrongDecryptionCertPassword');
  });

  // A .pfx whose key is not RSA (an EC certificate's, say: one picked up by mistake on the day of a
  // restore) was refused as 'The password does not open' it, with the right password: the operator
  // was sent hunting for another password instead of the .pfx of the encryption certificate.
  it('a .pfx whose private key is not RSA is refused as such, not as a wrong password', async () => {
    const { pfx: ecPfx } = await opensslPfx('ec', '/CN=EC', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);
    const e = await rejected(readPfxFile(ecPfx, password));
    expect(e).toMatchObject({ errorId: 'UnsupportedCertificateKey', exitCode: 2, targetObject: ecPfx });
    expect(e.message).toMatch(/holds an EC private key.*RSA/);
    expect(e.recommendedAction).toMatch(/New-EncryptionKey -Certificate/);
    // The wrong password is still called so.
    expect((await rejected(readPfxFile(ecPfx, 'bad'))).errorId).toBe('WrongDecryptionCertPassword');
  });

  it('a password beyond ASCII opens the same way in OpenSSL and here, and older .pfx files still open', async () => {
    const unicode = 'pässwörd łódź 🔑';
    const ours = join(dir, 'unicode.pfx');
    await writeFile(ours, createCertificate({ pfxPassword: unicode }).pfx);
    const { stdout } = await execa('openssl', ['pkcs12', '-in', ours, '-nodes', '-passin', 'env:AZS_TEST_PFX_PASS'], {
      env: { ...process.env, AZS_TEST_PFX_PASS: unicode },
    });
    expect(stdout).toContain('PRIVATE KEY');
    expect((await rejected(readPfxFile(ours, 'passwörd'))).errorId).toBe('WrongDecryptionCertPassword');

    const keyPath = join(dir, 'u.key');
    const certPem = join(dir, 'u.pem');
    const osslPfx = join(dir, 'openssl-unicode.pfx');
    await execa('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPem,
      '-subj',
      '/CN=Unicode',
      '-days',
      '10',
    ]);
    await execa('openssl', ['pkcs12', '-export', '-inkey', keyPath, '-in', certPem, '-out', osslPfx, '-passout', 'env:AZS_TEST_PFX_PASS'], {
      env: { ...process.env, AZS_TEST_PFX_PASS: unicode },
    });
    expect((await readPfxFile(osslPfx, unicode)).info.subject).toBe('CN=Unicode');

    // As AzsBackup wrote them before (Latin-1 for PBKDF2), for a password within Latin-1.
    const { withLatin1Pbes2 } = await import('../../src/crypto/forge-native-kdf.js');
    const older = join(dir, 'older.pfx');
    const latin1 = 'pässwörd';
    const made = withLatin1Pbes2(() => createCertificate({ pfxPassword: latin1 }));
    await writeFile(older, made.pfx);
    await expect(
      execa('openssl', ['pkcs12', '-in', older, '-nodes', '-passin', 'env:AZS_TEST_PFX_PASS'], {
        env: { ...process.env, AZS_TEST_PFX_PASS: latin1 },
      }),
    ).rejects.toThrow();
    expect((await readPfxFile(older, latin1)).info.thumbprint).toBe(made.info.thumbprint);
  });

  it('refuses a certificate too small to protect backups, or one not allowed to encipher keys', async () => {
    const openssl = async (name: string, bits: number, ext: string[] = []): Promise<string> => {
      const cert = join(dir, `${name}.pem`);
      await execa('openssl', [
        'req',
        '-x509',
        '-newkey',
        `rsa:${bits}`,
        '-nodes',
        '-keyout',
        join(dir, `${name}.key`),
        '-out',
        cert,
        '-subj',
        `/CN=${name}`,
        '-days',
        '10',
        ...ext,
      ]);
      return cert;
    };
    for (const [name, bits, ext, why] of [
      ['tiny', 512, [], /512 bits; at least 2048/],
      ['weak', 1024, [], /1024 bits; at least 2048/],
      ['signing-only', 3072, ['-addext', 'keyUsage=critical,digitalSignature'], /not allowed to encipher keys/],
    ] as const) {
      const e = await rejected(readCertificateFile(await openssl(name, bits, [...ext])));
      expect(e).toMatchObject({ errorId: 'UnsupportedCertificateKey', exitCode: 2 });
      expect(e.message).toMatch(why);
    }
    // Without a key usage extension, or with key encipherment in it, it is accepted.
    expect((await readCertificateFile(await openssl('plain', 2048))).keySize).toBe(2048);
    expect((await readCertificateFile(await openssl('enc', 3072, ['-addext', 'keyUsage=keyEncipherment']))).keySize).toBe(3072);
  });
});
