import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ConfigStore } from '../config/store.js';
import { shareAccess } from './share-access.js';
import { queuedRecord, rolesToBackUp } from './backup-job.js';
import { queuedRoleStatus, type BackupRecord } from './backup-record.js';
import { queueJob } from './job.js';
import { jobProcess, JobStore } from './job-store.js';
import { NODE_FLAGS } from '../process/node-flags.js';

/**
 * `-AsJob`: take the lock here (so a busy service fails at once with exit 11), record the job as
 * Queued, start a detached job runner and hand it the lock. The job outlives this command; its
 * record under AZSBACKUP_HOME/jobs is what Get-InfrastructureBackup -Name follows.
 */
export function startBackupInBackground(home: string, roleNames?: string[]): BackupRecord {
  const store = new ConfigStore(home);
  const config = store.read();
  const access = shareAccess(store, {}, config);
  const roles = rolesToBackUp(store, config, roleNames);
  const name = randomUUID();
  return queueJob(home, `backup ${name}`, (handOver) => {
    const runner = fileURLToPath(new URL('../engine/job-runner.js', import.meta.url));
    const child = spawn(process.execPath, [...NODE_FLAGS, runner, name, ...(roleNames ?? [])], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, AZSBACKUP_HOME: home },
    });
    const record = queuedRecord(name, access.path, roles);
    new JobStore(home).save({ ...record, ...jobProcess(child.pid!) });
    handOver(child.pid!);
    child.unref();
    return {
      ...record,
      RoleStatus: roles.map(queuedRoleStatus),
    };
  });
}
