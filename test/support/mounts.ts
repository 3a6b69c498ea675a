import { spawnSync } from 'node:child_process';
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** tmpfs mounts for the tests of roles whose folders are, or hold, mount points. */

export function mountTmpfs(at: string, options = 'size=8m'): boolean {
  return spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'azs-test', at]).status === 0;
}

export function unmount(at: string): void {
  spawnSync('umount', ['-l', at]);
}

/** Mounting a file system needs root (or CAP_SYS_ADMIN); without it those suites cannot run. */
export const canMount = ((): boolean => {
  const probe = mkdtempSync(path.join(os.tmpdir(), 'azs-mount-probe-'));
  try {
    if (!mountTmpfs(probe)) return false;
    unmount(probe);
    return true;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
})();

/** The mount points at or below `root` now, in the order the kernel lists them. */
export async function mountsAtOrUnder(root: string): Promise<string[]> {
  const table = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return table
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((p) => p === root || p.startsWith(`${root}/`));
}

/**
 * The drill's AZSBACKUP_HOME copied onto a small tmpfs of its own (`<root>/small`), for the tests
 * of a home that fills up; the caller unmounts `mnt` when done.
 */
export async function homeOnSmallDisk(d: { root: string; home: string }, size = '1m'): Promise<{ mnt: string; home: string }> {
  const mnt = path.join(d.root, 'small');
  await fs.mkdir(mnt);
  if (!mountTmpfs(mnt, `size=${size}`)) throw new Error(`mounting a ${size} tmpfs at ${mnt} failed`);
  const home = path.join(mnt, 'home');
  await fs.cp(d.home, home, { recursive: true });
  return { mnt, home };
}
