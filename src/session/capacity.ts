import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredConfig } from '../config/store.js';

/**
 * Room the share needs for the retained backups: what the last backup added to the share times the
 * number of backups retention keeps, and, while this machine holds no store on the share (a share
 * it never backed up to, as after Set-BackupShare -Path), one whole backup besides, since the first
 * backup there stores everything. A whole backup is what the last one's roles exported, or the
 * registered roles' size on disk if that is more (compression usually makes the real figure
 * smaller, so the estimate errs on the safe side); before the first backup it stands in for what
 * each backup adds.
 */
export function backupsRetained(config: StoredConfig): number {
  const perDay = 24 / config.scheduler.frequencyInHours;
  return Math.ceil(config.scheduler.retentionPeriodInDays * perDay) + 1;
}

async function sizeOf(path: string): Promise<number> {
  try {
    const info = await lstat(path);
    if (!info.isDirectory()) return info.size;
    let total = 0;
    for (const entry of await readdir(path)) total += await sizeOf(join(path, entry));
    return total;
  } catch {
    return 0;
  }
}

/** The registered roles' size on disk, where it can be known (directory and sqlite roles). */
async function rolesOnDisk(config: StoredConfig): Promise<number> {
  let total = 0;
  for (const role of config.roles) {
    if (role.provider === 'directory' && role.path) total += await sizeOf(role.path);
    if (role.provider === 'sqlite' && role.path)
      total += await stat(role.path).then(
        (s) => s.size,
        () => 0,
      );
  }
  return total;
}

export async function requiredCapacity(config: StoredConfig): Promise<number> {
  const whole = Math.max(config.lastBackupDataSize ?? 0, await rolesOnDisk(config));
  if (config.lastBackupSize === undefined) return whole * backupsRetained(config);
  const storeHere = config.repository !== undefined && config.repository.location === config.share?.path;
  return config.lastBackupSize * backupsRetained(config) + (storeHere ? 0 : whole);
}
