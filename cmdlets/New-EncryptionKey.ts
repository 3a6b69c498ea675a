import { basename, resolve } from 'node:path';
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
  if (params.Certificate) {
    const cerPath = resolve(params.CertificatePath!);
    const pfxPath = resolve(params.PfxPath!);
    if (!(await shouldProcess(`${cerPath}, ${pfxPath}`, 'Create an encryption certificate'))) return;
    const { createCertificate } = await import('../src/crypto/certificate.js');
    const { cer, pfx, info } = createCertificate({
      subject: params.Subject,
      keySize: params.KeySize,
      validityDays: params.ValidityDays,
      pfxPassword: params.PfxPassword!,
    });
    write(cerPath, cer, 0o644, 'certificate file');
    write(pfxPath, pfx, 0o600, '.pfx file');
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
