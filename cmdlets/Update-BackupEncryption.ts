import type { Cmdlet } from '../src/host/cmdlet.js';
import type { UpdateBackupEncryptionParameters } from './generated/parameters.js';
import { unauthenticatedCertificateWarning } from '../src/crypto/certificate-authentication.js';
import type { EncryptFor } from '../src/crypto/recipient.js';
import { ConfigStore } from '../src/config/store.js';
import { pauseAfterConfigReadForTests } from '../src/engine/job.js';
import { rewrapJob } from '../src/engine/rewrap.js';
import { configuredRecipients, decryptionMaterial, openShare, shareAccess } from '../src/engine/share-access.js';

/**
 * After a key or certificate rotation, re-wraps retained backups for the recipients configured now
 * (the key, or every configured certificate), without re-encrypting their data.
 */
const updateBackupEncryption: Cmdlet<UpdateBackupEncryptionParameters> = async ({
  params,
  home,
  shouldProcess,
  writeError,
  writeWarning,
  setExitCode,
}) => {
  const store = new ConfigStore(home);
  // Read before the lock only to refuse at once what is not configured; the job reads the share
  // and recipients again under the lock (`configured`), and those are what the warnings speak of.
  const located = (): { access: ReturnType<typeof shareAccess>; recipients: ReturnType<typeof configuredRecipients> } => {
    const config = store.read();
    return { access: shareAccess(store, {}, config), recipients: configuredRecipients(store, config) };
  };
  located();
  let certificates: Extract<EncryptFor, { kind: 'Certificate' }>[] = [];
  const oldMaterial = (await decryptionMaterial(params))!;
  await pauseAfterConfigReadForTests();
  const { matched, updated, unchanged, failures, repositoryKeptFor, repositoryKeptBy } = await rewrapJob({
    home,
    configured: async () => {
      const { access, recipients } = located();
      certificates = recipients.filter((r) => r.kind === 'Certificate');
      return { target: await openShare(access), sharePath: access.path, recipients };
    },
    oldMaterial,
    name: params.Name,
    allowUnauthenticated: params.AllowUnauthenticated === true,
    confirm: (name) => shouldProcess(`backup ${name}`, 'Re-wrap the data key for the configured encryption'),
    onUnauthenticated: (name, rewritten) =>
      writeWarning(
        `Backup ${name} carried no proof of who made it and was re-sealed anyway (-AllowUnauthenticated)` +
          `${rewritten && certificates.some((c) => c.authenticationKey) ? ': from now on it restores as if this service made it' : ''}.`,
      ),
  });
  if (matched === 0 && failures.length === 0) {
    writeWarning(
      'No backup on the share is encrypted for the decryption material given, so nothing was re-wrapped: ' +
        'they were re-wrapped already, or were made with other material. Check with Test-InfrastructureBackup and the material ' +
        'configured now; give the material of the backups to re-wrap, or -Name for one.',
    );
  }
  if (unchanged.length)
    writeWarning(
      `Already encrypted for the configured ${certificates.length === 0 ? 'key' : certificates.length === 1 ? 'certificate' : 'certificates'}, nothing to do: ${unchanged.join(', ')}.`,
    );
  if (repositoryKeptFor.length)
    writeWarning(
      `The share's deduplicating store stays encrypted for ${repositoryKeptFor.join(', ')} too: ` +
        (repositoryKeptBy.length
          ? `${repositoryKeptBy.length === 1 ? 'backup' : 'backups'} ${repositoryKeptBy.join(', ')} ${repositoryKeptBy.length === 1 ? 'was' : 'were'} not re-wrapped and still need it. `
          : 'some BackupInfo.xml could not be read, and the backups they describe may open only with that material. ') +
        'Keep it to restore them. Once they are re-wrapped or removed, run Update-BackupEncryption with it again: the store is then encrypted for the configured material alone.',
    );
  for (const c of certificates) if (!c.authenticationKey) writeWarning(unauthenticatedCertificateWarning(c.thumbprint));
  // Some re-wrapped and some not is a partial success (3); none at all, the failure's own code.
  if (failures.length > 0 && updated.length === 0) setExitCode(failures[0]!.exitCode);
  for (const error of failures) writeError(error);
  return updated;
};
export default updateBackupEncryption;
