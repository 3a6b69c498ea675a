import type { Cmdlet } from '../src/host/cmdlet.js';
import { unauthenticatedCertificateWarning } from '../src/crypto/certificate-authentication.js';
import { ConfigStore } from '../src/config/store.js';
import { isAzsError } from '../src/errors.js';
import { acquireJobLock } from '../src/engine/job.js';
import { backupsToRewrap, rewrapBackup } from '../src/engine/rewrap.js';
import {
  configuredRecipient, decryptionMaterial, openShare, shareAccess, type DecryptionParameters,
} from '../src/session/session.js';

/**
 * After a key or certificate rotation, re-wraps retained backups for the recipient configured now,
 * without re-encrypting their data.
 */
const updateBackupEncryption: Cmdlet = async ({ params, home, shouldProcess, writeError, writeWarning, setExitCode }) => {
  const store = new ConfigStore(home);
  const config = store.read();
  const access = shareAccess(store, {}, config);
  const recipient = configuredRecipient(store, config);
  const oldMaterial = (await decryptionMaterial(params as DecryptionParameters))!;
  const target = await openShare(access);
  const lock = acquireJobLock(home, 'update encryption');
  try {
    const updated = [];
    const unchanged: string[] = [];
    const options = { allowUnauthenticated: params.AllowUnauthenticated === true };
    const { names, unreadable } = await backupsToRewrap(target, oldMaterial, params.Name as string | undefined);
    // One damaged backup is reported and the others are still re-wrapped: an operator who retires
    // the old material must see exactly which backups it still opens alone.
    const failures = [...unreadable];
    if (names.length === 0 && unreadable.length === 0) {
      writeWarning('No backup on the share is encrypted for the decryption material given, so nothing was re-wrapped: they were re-wrapped already, or were made with other material. '
        + 'Check with Test-InfrastructureBackup and the material configured now; give the material of the backups to re-wrap, or -Name for one.');
    }
    for (const name of names) {
      if (!(await shouldProcess(`backup ${name}`, 'Re-wrap the data key for the configured encryption'))) continue;
      try {
        const { record, rewritten, wasAuthenticated } = await rewrapBackup(target, access.path, name, oldMaterial, recipient, options);
        if (!wasAuthenticated) {
          writeWarning(`Backup ${name} carried no proof of who made it and was re-sealed anyway (-AllowUnauthenticated)${rewritten && recipient.kind === 'Certificate' && recipient.authenticationKey ? ': from now on it restores as if this service made it' : ''}.`);
        }
        updated.push(record);
        if (!rewritten) unchanged.push(name);
      } catch (e) {
        if (params.Name !== undefined || !isAzsError(e)) throw e;
        failures.push(e);
      }
    }
    if (unchanged.length) writeWarning(`Already encrypted for the configured ${recipient.kind === 'Key' ? 'key' : 'certificate'}, nothing to do: ${unchanged.join(', ')}.`);
    if (recipient.kind === 'Certificate' && !recipient.authenticationKey) writeWarning(unauthenticatedCertificateWarning(recipient.thumbprint));
    // Some re-wrapped and some not is a partial success (3); none at all, the failure's own code.
    if (failures.length > 0 && updated.length === 0) setExitCode(failures[0]!.exitCode);
    for (const error of failures) writeError(error);
    return updated;
  } finally {
    lock.release();
  }
};
export default updateBackupEncryption;
