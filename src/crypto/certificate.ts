import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { AzsError, ExitCode, isAzsError, usageError } from '../errors.js';
import { isMissingFile, readFileBounded, ReadFailure } from '../io/bounded-read.js';
import { useNativeKdf, withLatin1Pbes2 } from './forge-native-kdf.js';

useNativeKdf();

/** What the rest of the product needs to know about an encryption certificate. */
export interface CertificateInfo {
  /** SHA-1 of the DER encoding, upper-case hex without separators, as Windows shows it. */
  thumbprint: string;
  /** Distinguished name, least significant part first, as .NET's X509Certificate.Subject shows it. */
  subject: string;
  notBefore: Date;
  notAfter: Date;
  publicKeyPem: string;
  /** Modulus length in bits (0 when the key is not RSA). */
  keySize: number;
}

export interface CreateCertificateOptions {
  /** e.g. `CN=AzsBackup Encryption, O=Contoso`; default `CN=AzsBackup Encryption`. */
  subject?: string;
  keySize?: 3072 | 4096;
  validityDays?: number;
  pfxPassword: string;
}

export interface CreatedCertificate {
  /** The public certificate, DER: the `.cer` that encrypts. */
  cer: Buffer;
  /** PKCS#12 holding the certificate and its private key, AES-256 encrypted: the `.pfx` that decrypts. */
  pfx: Buffer;
  info: CertificateInfo;
}

export const DEFAULT_CERTIFICATE_SUBJECT = 'CN=AzsBackup Encryption';
const DEFAULT_KEY_SIZE = 3072;
const DEFAULT_VALIDITY_DAYS = 365;
/** Microsoft's "Document Encryption" EKU, which New-SelfSignedCertificate -Type DocumentEncryptionCert sets. */
const DOCUMENT_ENCRYPTION_EKU = '1.3.6.1.4.1.311.80.1';
/** PBKDF2 and PKCS#12 MAC iterations; forge encodes the MAC count only below 65536. */
const PFX_ITERATIONS = 20000;
const SUBJECT_ATTRIBUTES = new Set(['CN', 'O', 'OU', 'L', 'ST', 'C', 'E']);

/** Parses `CN=a, O=b` (commas inside values escaped as `\,`) into forge attributes, most significant first. */
function parseSubject(subject: string): forge.pki.CertificateField[] {
  const parts = subject
    .split(/(?<!\\),/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  const fields: forge.pki.CertificateField[] = [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    const name = eq > 0 ? part.slice(0, eq).trim().toUpperCase() : '';
    const value =
      eq > 0
        ? part
            .slice(eq + 1)
            .trim()
            .replace(/\\,/g, ',')
        : '';
    if (!SUBJECT_ATTRIBUTES.has(name) || value.length === 0) {
      throw usageError(
        `The certificate subject '${subject}' is not valid: '${part}' is not one of ${[...SUBJECT_ATTRIBUTES].join(', ')} followed by = and a value.`,
        'InvalidCertificateSubject',
        subject,
        `Give a subject such as '${DEFAULT_CERTIFICATE_SUBJECT}' or 'CN=Backup, O=Contoso'.`,
      );
    }
    fields.push({ shortName: name, value });
  }
  if (!fields.some((f) => f.shortName === 'CN')) {
    throw usageError(
      `The certificate subject '${subject}' has no CN.`,
      'InvalidCertificateSubject',
      subject,
      `Give a subject such as '${DEFAULT_CERTIFICATE_SUBJECT}'.`,
    );
  }
  // Written least significant first (Windows style); X.509 stores the most significant first.
  return fields.reverse();
}

/** A random positive serial of 16 bytes whose first byte keeps the DER integer minimal and positive. */
function randomSerialHex(): string {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial.toString('hex');
}

/**
 * Makes a self-signed RSA certificate for backup encryption. The key pair comes from Node (OpenSSL),
 * which is fast; forge only builds and signs the X.509 structure and the PKCS#12.
 */
export function createCertificate(opts: CreateCertificateOptions): CreatedCertificate {
  const keySize = opts.keySize ?? DEFAULT_KEY_SIZE;
  if (keySize !== 3072 && keySize !== 4096) {
    throw usageError(
      `A key size of ${String(keySize)} bits is not supported.`,
      'InvalidKeySize',
      keySize,
      'Use 3072 (the default) or 4096.',
    );
  }
  const validityDays = opts.validityDays ?? DEFAULT_VALIDITY_DAYS;
  if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 3650) {
    throw usageError(
      `A validity of ${String(validityDays)} days is not supported.`,
      'InvalidValidityPeriod',
      validityDays,
      'Use a whole number of days from 1 to 3650 (the default is 365).',
    );
  }
  if (typeof opts.pfxPassword !== 'string' || opts.pfxPassword.length === 0) {
    throw usageError(
      'A password for the .pfx file is required: it protects the private key that decrypts the backups.',
      'PfxPasswordRequired',
      undefined,
      'Give -PfxPassword (from standard input with -, or AZSBACKUP_PFXPASSWORD).',
    );
  }
  const subject = parseSubject(opts.subject ?? DEFAULT_CERTIFICATE_SUBJECT);

  const { privateKey: privatePem } = generateKeyPairSync('rsa', {
    modulusLength: keySize,
    publicExponent: 0x10001,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const privateKey = forge.pki.privateKeyFromPem(privatePem);
  const publicKey = forge.pki.setRsaPublicKey(privateKey.n, privateKey.e);

  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerialHex();
  // A little back-dating absorbs clock skew between the machine that makes it and the one that checks it.
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 5 * 60 * 1000);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = new Date(notBefore.getTime() + validityDays * 24 * 60 * 60 * 1000);
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true, dataEncipherment: true },
    { name: 'extKeyUsage', [DOCUMENT_ENCRYPTION_EKU]: true, emailProtection: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(privateKey, forge.md.sha256.create());

  const cer = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
  const p12 = forge.pkcs12.toPkcs12Asn1(privateKey, cert, opts.pfxPassword, {
    algorithm: 'aes256',
    prfAlgorithm: 'sha256',
    count: PFX_ITERATIONS,
    saltSize: 16,
    friendlyName: 'AzsBackup Encryption',
  } as Parameters<typeof forge.pkcs12.toPkcs12Asn1>[3]);
  const pfx = Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary');
  return { cer, pfx, info: describe(new X509Certificate(cer)) };
}

function describe(x509: X509Certificate): CertificateInfo {
  const publicKey = x509.publicKey;
  return {
    thumbprint: createHash('sha1').update(x509.raw).digest('hex').toUpperCase(),
    subject: x509.subject.split('\n').reverse().join(', '),
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keySize: publicKey.asymmetricKeyType === 'rsa' ? (publicKey.asymmetricKeyDetails?.modulusLength ?? 0) : 0,
  };
}

/** A certificate or .pfx is a few KB; a limit keeps /dev/zero or a disk image from being read whole. */
export const MAX_CERTIFICATE_FILE_BYTES = 1024 * 1024;

async function readOrExplain(path: string, what: string): Promise<Buffer> {
  try {
    return await readFileBounded(path, {
      what,
      maxBytes: MAX_CERTIFICATE_FILE_BYTES,
      remediation: 'Check the path and that this account may read the file. New-EncryptionKey -Certificate makes a .cer and a .pfx.',
    });
  } catch (e) {
    if (!isAzsError(e) || e.errorId === ReadFailure.TooLarge || e.errorId === ReadFailure.NotAFile) throw e;
    const missing = isMissingFile(e);
    // The ErrorIds scripts already branch on.
    throw new AzsError(e.message, {
      errorId: missing ? 'CertificateFileNotFound' : 'CertificateFileUnreadable',
      category: missing ? 'ObjectNotFound' : 'ReadError',
      exitCode: missing ? ExitCode.Usage : ExitCode.Failure,
      targetObject: path,
      recommendedAction: e.recommendedAction,
      cause: e.cause,
    });
  }
}

/** Reads a public certificate, DER (`.cer` as Windows exports it) or PEM. */
export async function readCertificateFile(path: string): Promise<CertificateInfo> {
  const bytes = await readOrExplain(path, 'certificate file');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(bytes);
  } catch (cause) {
    throw new AzsError(`The file '${path}' is not an X.509 certificate (neither DER nor PEM).`, {
      errorId: 'NotACertificate',
      category: 'InvalidData',
      exitCode: ExitCode.Usage,
      targetObject: path,
      recommendedAction:
        'Give the .cer file of the encryption certificate (New-EncryptionKey -Certificate makes one); a .pfx belongs to ' +
        '-DecryptionCertPath.',
      cause,
    });
  }
  refuseSeveralCertificates(path, bytes, x509);
  const info = describe(x509);
  const remedy =
    'Use an RSA certificate of 3072 bits or more that allows key encipherment, e.g. one made by New-EncryptionKey -Certificate.';
  if (info.keySize === 0) {
    throw usageError(
      `The certificate '${path}' does not have an RSA key; backups are encrypted with RSA-OAEP.`,
      'UnsupportedCertificateKey',
      path,
      remedy,
    );
  }
  // Accepted here, a certificate every backup then fails with (512 bits cannot carry an OAEP
  // SHA-256 block) or that protects them too weakly: refused before it is configured.
  if (info.keySize < MIN_KEY_SIZE) {
    throw usageError(
      `The certificate '${path}' has an RSA key of ${info.keySize} bits; at least ${MIN_KEY_SIZE} are required.`,
      'UnsupportedCertificateKey',
      path,
      remedy,
    );
  }
  if (!allowsKeyEncipherment(x509)) {
    throw usageError(
      `The certificate '${path}' is not allowed to encipher keys (its key usage says so), which is what it is for here.`,
      'UnsupportedCertificateKey',
      path,
      remedy,
    );
  }
  return info;
}

const MIN_KEY_SIZE = 2048;

/**
 * Node reads the first certificate of a file and ignores the rest: a PEM bundle, or .cer files run
 * together, would configure its first certificate alone, and backups would never be encrypted for
 * the others, whose .pfx the operator counts on. Which one is meant is not guessed.
 */
function refuseSeveralCertificates(path: string, bytes: Buffer, x509: X509Certificate): void {
  const text = bytes.toString('latin1');
  const pem = text.match(/-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----/g)?.length ?? 0;
  const several =
    pem > 1 ? `holds ${pem} certificates` : pem === 0 && bytes.length > x509.raw.length ? 'holds more than one certificate' : undefined;
  if (!several) return;
  throw usageError(
    `The file '${path}' ${several} (or data after the first); only the first would be used.`,
    'SeveralCertificatesInFile',
    path,
    'Give each encryption certificate as a file of its own, separated by commas (-EncryptionCertPath ops.cer,break-glass.cer); ' +
      'for a certificate with its chain, the encryption certificate alone.',
  );
}

/** A certificate without a key usage extension may be used for anything; one with it, as it says. */
function allowsKeyEncipherment(x509: X509Certificate): boolean {
  let usage: { keyEncipherment?: boolean } | null;
  try {
    usage = forge.pki.certificateFromPem(x509.toString()).getExtension('keyUsage') as typeof usage;
  } catch {
    // forge reads fewer certificates than Node, which does the encryption: not a reason to refuse.
    return true;
  }
  return !usage || usage.keyEncipherment === true;
}

function wrongPassword(path: string, cause: unknown): AzsError {
  return new AzsError(`The password does not open '${path}'.`, {
    errorId: 'WrongDecryptionCertPassword',
    category: 'SecurityError',
    exitCode: ExitCode.Integrity,
    targetObject: path,
    recommendedAction: 'Give the password that was set when the .pfx was made, as -DecryptionCertPassword.',
    commandLineHint: 'It is read from standard input with -DecryptionCertPassword -, or from AZSBACKUP_DECRYPTIONCERTPASSWORD.',
    cause,
  });
}

function notAPfx(path: string, why: string, cause?: unknown): AzsError {
  return new AzsError(`The file '${path}' is not a usable PKCS#12 (.pfx) file: ${why}.`, {
    errorId: 'NotAPfxFile',
    category: 'InvalidData',
    exitCode: ExitCode.Usage,
    targetObject: path,
    recommendedAction: 'Give the .pfx made with the encryption certificate (it holds the private key); a .cer has no private key.',
    cause,
  });
}

/** The type of a PKCS#8 private key Node reads ('ec', 'ed25519', ...), undefined if it reads none there. */
function keyTypeOf(privateKeyInfo: forge.asn1.Asn1): string | undefined {
  try {
    const der = Buffer.from(forge.asn1.toDer(privateKeyInfo).getBytes(), 'binary');
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).asymmetricKeyType;
  } catch {
    return undefined;
  }
}

const KEY_TYPE_NAMES: Record<string, string> = {
  ec: 'an EC',
  dsa: 'a DSA',
  'rsa-pss': 'an RSA-PSS',
  ed25519: 'an Ed25519',
  ed448: 'an Ed448',
};

/** A .pfx opened with its password whose key cannot unwrap anything here. */
function unsupportedPfxKey(path: string, type: string): AzsError {
  return usageError(
    `The .pfx '${path}' holds ${KEY_TYPE_NAMES[type] ?? `a ${type}`} private key; backups are encrypted for RSA certificates (RSA-OAEP), so it opens none.`,
    'UnsupportedCertificateKey',
    path,
    "Give the .pfx of the encryption certificate, an RSA certificate such as New-EncryptionKey -Certificate makes (Get-InfrastructureBackup shows each backup's certificate thumbprint).",
  );
}

/** Opens a `.pfx` and returns the certificate with its private key (PKCS#8 PEM, unencrypted, in memory only). */
export async function readPfxFile(path: string, password: string): Promise<{ info: CertificateInfo; privateKeyPem: string }> {
  const bytes = await readOrExplain(path, '.pfx file');
  let asn1: forge.asn1.Asn1;
  try {
    asn1 = forge.asn1.fromDer(forge.util.createBuffer(bytes.toString('binary')));
  } catch (cause) {
    throw notAPfx(path, 'it is not DER-encoded', cause);
  }
  const open = (): { p12: forge.pkcs12.Pkcs12Pfx; key?: forge.pki.PrivateKey | null } => {
    let p12: forge.pkcs12.Pkcs12Pfx;
    try {
      p12 = forge.pkcs12.pkcs12FromAsn1(asn1, true, password);
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      // forge reports a failed MAC or a failed key decryption; both mean the password is wrong.
      if (/MAC could not be verified|Invalid password|decrypt/i.test(message)) throw wrongPassword(path, cause);
      throw notAPfx(path, message, cause);
    }
    const keyBags = [
      ...(p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag! })[forge.pki.oids.pkcs8ShroudedKeyBag!] ?? []),
      ...(p12.getBags({ bagType: forge.pki.oids.keyBag! })[forge.pki.oids.keyBag!] ?? []),
    ];
    const key = keyBags.find((b) => b.key)?.key;
    if (!key && keyBags.length > 0) {
      // forge reads RSA keys only, and leaves another kind (EC, say) as its ASN.1.
      const other = keyBags.map((b) => (b.asn1 ? keyTypeOf(b.asn1) : undefined)).find((t) => t !== undefined);
      if (other) throw unsupportedPfxKey(path, other);
      // Without a MAC, a wrong password surfaces only as a key that fails to decrypt.
      throw wrongPassword(path, undefined);
    }
    return { p12, key };
  };
  let opened: ReturnType<typeof open>;
  try {
    opened = open();
  } catch (e) {
    // A password beyond ASCII was read as Latin-1 when AzsBackup made a .pfx before it matched
    // OpenSSL (UTF-8): such a file opens the old way.
    if (!/[^\x00-\x7f]/.test(password) || !isAzsError(e) || e.errorId !== 'WrongDecryptionCertPassword') throw e;
    opened = withLatin1Pbes2(open);
  }
  const { p12, key } = opened;
  const certBags = p12.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!] ?? [];
  if (!key) throw notAPfx(path, 'it holds no private key');
  const privateKeyPem = forge.pki.privateKeyInfoToPem(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(key)));
  const rsaKey = key as forge.pki.rsa.PrivateKey;
  // The certificate that belongs to the key is the one with the same modulus (a .pfx may carry a chain).
  const cert = certBags
    .map((b) => b.cert)
    .find((c): c is forge.pki.Certificate => {
      const pub = c?.publicKey as forge.pki.rsa.PublicKey | undefined;
      return !!pub && typeof pub.n?.equals === 'function' && pub.n.equals(rsaKey.n);
    });
  if (!cert) throw notAPfx(path, 'it holds no certificate for its private key');
  const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
  return { info: describe(new X509Certificate(der)), privateKeyPem };
}
