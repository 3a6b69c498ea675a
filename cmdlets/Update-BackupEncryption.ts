import type { Cmdlet } from '../src/host/cmdlet.js';
import { ConfigStore } from '../src/config/store.js';
import { acquireJobLock } from '../src/engine/job-lock.js';
import { backupsToRewrap, rewrapBackup } from '../src/engine/rewrap.js';
import { configuredRecipient, decryptionMaterial, openShare, shareAccess, type DecryptionParameters } from '../src/session/session.js';

/**
 * After a key or certificate rotation, re-wraps retained backups for the recipient configured now,
 * without re-encrypting their data.
 */
const updateBackupEncryption: Cmdlet = async ({ params, home, shouldProcess }) => {
  const store = new ConfigStore(home);
  const config = store.read();
  const access = shareAccess(store, {}, config);
  const recipient = configuredRecipient(store, config);
  const oldMaterial = (await decryptionMaterial(params as DecryptionParameters))!;
  const target = await openShare(access);
  const lock = acquireJobLock(home, 'update encryption');
  try {
    const updated = [];
    for (const name of await backupsToRewrap(target, oldMaterial, params.Name as string | undefined)) {
      if (await shouldProcess(`backup ${name}`, 'Re-wrap the data key for the configured encryption')) {
        updated.push(await rewrapBackup(target, access.path, name, oldMaterial, recipient));
      }
    }
    return updated;
  } finally {
    lock.release();
  }
};
export default updateBackupEncryption;
