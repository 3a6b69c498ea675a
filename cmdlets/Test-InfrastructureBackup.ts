import type { Cmdlet } from '../src/host/cmdlet.js';
import type { TestInfrastructureBackupParameters } from './generated/parameters.js';
import { AzsError } from '../src/errors.js';
import { ConfigStore } from '../src/config/store.js';
import { verifyBackup } from '../src/engine/verify.js';
import { decryptionMaterial, openShare, shareAccess, shareParameters } from '../src/engine/share-access.js';

/**
 * Checks a backup without restoring it: without a key, every file against its recorded hash (and
 * every pack it needs against its name); with the key or the .pfx, every chunk decrypted and
 * authenticated.
 */
const testInfrastructureBackup: Cmdlet<TestInfrastructureBackupParameters> = async ({
  params,
  secretsFromEnvironment,
  home,
  progress,
  writeError,
  writeWarning,
  setExitCode,
}) => {
  const target = await openShare(shareAccess(new ConfigStore(home), shareParameters(params, secretsFromEnvironment)));
  const result = await verifyBackup(target, params.Name, await decryptionMaterial(params), progress, {
    allowUnauthenticated: params.AllowUnauthenticated === true,
  });
  if (result.Authenticity === 'Unauthenticated') writeWarning(`Backup ${result.Name}: ${result.Checked}`);
  // The exit code first, so each error record says the code the command ends with.
  if (!result.IsValid) setExitCode(12);
  for (const bad of result.Files.filter((f) => !f.Succeeded)) {
    writeError(
      new AzsError(
        `Backup ${result.Name}: ${bad.RoleName && !bad.Message.includes(bad.RoleName) ? `role ${bad.RoleName}: ` : ''}${bad.File}: ${bad.Message}`,
        {
          errorId: 'BackupVerificationFailed',
          category: 'InvalidData',
          exitCode: 12,
          targetObject: bad.File,
          recommendedAction:
            'Do not rely on this backup: take a new one (Start-InfrastructureBackup) and check the share for damage or tampering.',
        },
      ),
    );
  }
  return result;
};
export default testInfrastructureBackup;
