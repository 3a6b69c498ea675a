import { existsSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Cmdlet } from '../src/host/cmdlet.js';
import type { NewEncryptionKeyParameters } from './generated/parameters.js';
import { AzsError, usageError } from '../src/errors.js';
import { writeFileWhole } from '../src/fs/durable-write.js';
import { fileError, kernelTreeOf } from '../src/io/bounded-read.js';

/**
 * Makes a symmetric key (64 random bytes, Base64) or, with -Certificate, a self-signed RSA
 * certificate (.cer, public) and its .pfx protected by a password (private).
 */
const newEncryptionKey: Cmdlet<NewEncryptionKeyParameters> = async ({ params, shouldProcess }) => {
  const write = (path: string, data: string | Buffer, mode: number, what: string) => {
    const where = {
      what,
      remediation: `Give a path in an existing folder that this account may write, e.g. ./${basename(path)}; create the folder first if needed.`,
    };
    const kernel = kernelTreeOf(path);
    if (kernel)
      throw usageError(
        `The ${what} '${path}' lies under ${kernel}, where no file can be kept.`,
        'PathIsKernelInterface',
        path,
        where.remediation,
      );
    // A new file with its mode from the start, renamed into place under -Force: an old file's
    // looser mode is not kept, and a symbolic link at the path is replaced, not followed.
    try {
      writeFileWhole(path, data, { mode, replace: Boolean(params.Force) });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fileError(e, path, where, 'write');
      throw new AzsError(`${path} already exists.`, {
        errorId: 'FileExists',
        category: 'ResourceExists',
        exitCode: 2,
        targetObject: path,
        recommendedAction: 'Choose another path, or give -Force to overwrite it.',
      });
    }
  };
  /** The folder a file is to be written in exists and is a folder (fileError words it as a write would). */
  const assertFolderOf = (path: string, what: string) => {
    try {
      if (!statSync(dirname(path)).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    } catch (e) {
      throw fileError(
        e,
        path,
        {
          what,
          remediation: `Give a path in an existing folder that this account may write, e.g. ./${basename(path)}; create the folder first if needed.`,
        },
        'write',
      );
    }
  };
  if (params.Certificate) {
    const cerPath = resolve(params.CertificatePath!);
    const pfxPath = resolve(params.PfxPath!);
    if (cerPath === pfxPath) {
      throw usageError(
        `-CertificatePath and -PfxPath both name ${cerPath}: the .pfx would be written over the .cer.`,
        'CertificatePathIsPfxPath',
        'PfxPath',
        'Give the certificate and its .pfx two paths, e.g. ./backup.cer and ./backup.pfx.',
      );
    }
    if (!(await shouldProcess(`${cerPath}, ${pfxPath}`, 'Create an encryption certificate'))) return;
    const { createCertificate } = await import('../src/crypto/certificate.js');
    const { cer, pfx, info } = createCertificate({
      subject: params.Subject,
      keySize: params.KeySize,
      validityDays: params.ValidityDays,
      pfxPassword: params.PfxPassword!,
    });
    // Both files or neither. The .pfx first, since a .cer without it encrypts backups nobody can
    // restore; the .cer's folder is checked before, so that under -Force an existing .pfx is not
    // replaced for a .cer that cannot be written; and a new .pfx goes again if the .cer fails.
    assertFolderOf(cerPath, 'certificate file');
    const pfxWasThere = existsSync(pfxPath);
    write(pfxPath, pfx, 0o600, '.pfx file');
    try {
      write(cerPath, cer, 0o644, 'certificate file');
    } catch (e) {
      if (!pfxWasThere) rmSync(pfxPath, { force: true });
      throw e;
    }
    return {
      Kind: 'Certificate',
      KeyId: null,
      Key: null,
      KeyPath: null,
      Thumbprint: info.thumbprint,
      Subject: info.subject,
      KeySize: info.keySize,
      NotBefore: info.notBefore,
      NotAfter: info.notAfter,
      CertificatePath: cerPath,
      PfxPath: pfxPath,
    };
  }
  const keyPath = params.KeyPath === undefined ? undefined : resolve(params.KeyPath);
  if (keyPath && !(await shouldProcess(keyPath, 'Create an encryption key'))) return;
  const { generateSymmetricKey, parseSymmetricKey, symmetricKeyId } = await import('../src/crypto/symmetric-key.js');
  const key = generateSymmetricKey();
  if (keyPath) write(keyPath, `${key}\n`, 0o600, 'key file');
  return {
    Kind: 'Key',
    KeyId: symmetricKeyId(parseSymmetricKey(key)),
    Key: keyPath ? null : key,
    KeyPath: keyPath ?? null,
    Thumbprint: null,
    Subject: null,
    KeySize: 512,
    NotBefore: null,
    NotAfter: null,
    CertificatePath: null,
    PfxPath: null,
  };
};
export default newEncryptionKey;
