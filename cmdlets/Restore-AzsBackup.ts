import type { Cmdlet } from '../src/host/cmdlet.js';
import type { RestoreAzsBackupParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { ExitCode } from '../src/errors.js';
import { restoreJob, restoreRoomJob, type RestoreJobRequest } from '../src/engine/restore-job.js';
import { describeRoom, destinationFull, shortOf } from '../src/engine/restore-room.js';
import { decryptionMaterial, shareAccess, shareParameters } from '../src/engine/share-access.js';

/**
 * Restores all roles, or one with -RoleName, from a backup, in their recorded order; works on a
 * fresh machine given -Path, the credential and the decryption material.
 */
const restoreAzsBackup: Cmdlet<RestoreAzsBackupParameters> = async ({
  params,
  secretsFromEnvironment,
  home,
  progress,
  signal,
  shouldProcess,
  whatIf,
  writeError,
  writeWarning,
  setExitCode,
}) => {
  const { Name: name, RoleName: roleName } = params;
  const access = shareAccess(new ConfigStore(home), shareParameters(params, secretsFromEnvironment));
  const approved = await shouldProcess(`${roleName ?? 'every role'} from backup ${name}`, 'Restore');
  if (!approved && !whatIf) return;
  const material = (await decryptionMaterial(params))!;
  const request: RestoreJobRequest = {
    home,
    access,
    name,
    material,
    roleName,
    progress,
    signal,
    allowUnauthenticated: params.AllowUnauthenticated === true,
    skipSpaceCheck: params.SkipSpaceCheck === true,
  };
  if (!approved) {
    await sayRoom(request, whatIf!, writeWarning);
    return;
  }
  const { results, warnings, roleErrors, error } = await restoreJob(request);
  for (const warning of warnings) writeWarning(warning);
  // The exit code first, so each error record says the code the command ends with: a role the
  // backup lacks leaves the restore partial (3), unless a role that failed to restore says worse.
  if (error || roleErrors.length) setExitCode(error?.exitCode ?? ExitCode.Partial);
  for (const roleError of roleErrors) writeError(roleError);
  // A restore that stopped because it was asked to (Ctrl-C) ends with the host saying so.
  if (error && error !== signal.reason) writeError(error);
  return results;
};

/**
 * -WhatIf: the room the restore checks before it stages anything, file system by file system, from
 * the backup opened as a restore opens it; a warning where the restore would be refused. Nothing is staged.
 */
async function sayRoom(request: RestoreJobRequest, whatIf: (line: string) => void, writeWarning: (message: string) => void): Promise<void> {
  const rooms = await restoreRoomJob(request);
  for (const room of rooms) whatIf(`Checking room for the restore: ${describeRoom(room)}.`);
  const short = shortOf(rooms);
  if (short.length > 0) writeWarning(`The restore would be refused: ${destinationFull(request.name, short).message}`);
}
export default restoreAzsBackup;
