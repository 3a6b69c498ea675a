import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredConfig } from '../config/store.js';

/**
 * Room the share needs for the retained backups: the last backup's size times the number of
 * backups retention keeps; before the first backup, the registered roles' size on disk stands in
 * for it (compression usually makes the real figure smaller, so the estimate errs on the safe side).
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

export async function requiredCapacity(config: StoredConfig): Promise<number> {
  let one = config.lastBackupSize;
  if (one === undefined) {
    one = 0;
    for (const role of config.roles) {
      if (role.provider === 'directory' && role.path) one += await sizeOf(role.path);
      if (role.provider === 'sqlite' && role.path)
        one += await stat(role.path).then(
          (s) => s.size,
          () => 0,
        );
    }
  }
  return one * backupsRetained(config);
}
