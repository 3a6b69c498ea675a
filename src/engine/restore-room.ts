import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AzsError, ExitCode } from '../errors.js';
import type { RoleRecord } from '../catalog/backup-info.js';
import { mountsAtOrBelow, resolveDestination } from '../providers/swap.js';

/**
 * Room for a restore, checked before anything is staged. A role larger than the free space would
 * fill its destination's file system to the last byte before it failed and was cleaned up, and
 * every other service on that disk (on the machine being restored) would meet ENOSPC meanwhile.
 *
 * What a role takes is what the backup recorded it exported (BackupInfo.xml, the role's Size):
 * for a folder, its tar archive (a 512-byte header per entry, each file's bytes padded to 512, a
 * hard link's second name a header alone, a sparse file in full: GNU tar writes it back whole);
 * for a sqlite role, the database file. Staged data lies beside the old data until it goes into
 * place, so the old data frees nothing meanwhile. Roles staged on one file system are summed.
 *
 * Command and postgres roles are left out: their data goes to a program or a database server,
 * not to a local file system this process can measure.
 */

/**
 * Kept free beyond what the roles recorded: the blocks files and folders round up to (an archive
 * counts 512-byte blocks, a disk 4 KiB ones), the swap journals, and room for the machine's other
 * services to go on writing while the restore runs.
 */
export function marginFor(needed: number): number {
  return Math.ceil(needed / 32) + 1024 * 1024;
}

/** One file system the selected roles are staged on: what they need of it and what it has. */
export interface RoomOnFileSystem {
  /** Where the file system is mounted (the highest folder above the staging on the same device). */
  mountPoint: string;
  /** The roles staged on it, with the bytes each recorded. */
  roles: { name: string; bytes: number }[];
  /** The roles' bytes, and with the margin (marginFor) what must be free. */
  bytes: number;
  needed: number;
  /** What an unprivileged writer may still use (statfs f_bavail): the root reserve stays free. */
  free: number;
}

/** The folder a role's staging is made in: beside its destination, or inside it for a folder that is a mount point. */
async function stagingFolder(role: RoleRecord): Promise<string | undefined> {
  const { provider, path: where } = role.definition;
  if ((provider !== 'directory' && provider !== 'sqlite') || where === undefined) return undefined;
  const dest = await resolveDestination(where);
  if (provider === 'directory') {
    const st = await fs.stat(dest).catch(() => undefined);
    if (st?.isDirectory() && (await mountsAtOrBelow(dest))[0] === dest) return dest;
  }
  // A missing folder is made (makeFolders) on the file system of the nearest one that exists.
  let folder = path.dirname(dest);
  while (!(await isFolder(folder))) {
    const up = path.dirname(folder);
    if (up === folder) return undefined;
    folder = up;
  }
  return folder;
}

async function isFolder(p: string): Promise<boolean> {
  return (await fs.stat(p).catch(() => undefined))?.isDirectory() === true;
}

/** The highest folder at or above `folder` on device `dev`: where its file system is mounted. */
async function mountPointOf(folder: string, dev: number): Promise<string> {
  let at = folder;
  for (;;) {
    const up = path.dirname(at);
    if (up === at || (await fs.stat(up).catch(() => undefined))?.dev !== dev) return at;
    at = up;
  }
}

/**
 * The file systems the roles are staged on, with what they need and have. A destination that
 * cannot be looked at (permissions, a path through a file) is left to its provider, which says why.
 */
export async function roomFor(roles: RoleRecord[]): Promise<RoomOnFileSystem[]> {
  const byDevice = new Map<number, RoomOnFileSystem>();
  for (const role of roles) {
    const folder = await stagingFolder(role).catch(() => undefined);
    if (folder === undefined) continue;
    const st = await fs.stat(folder).catch(() => undefined);
    const space = await fs.statfs(folder).catch(() => undefined);
    if (!st || !space) continue;
    let room = byDevice.get(st.dev);
    if (!room) {
      room = { mountPoint: await mountPointOf(folder, st.dev), roles: [], bytes: 0, needed: 0, free: space.bavail * space.bsize };
      byDevice.set(st.dev, room);
    }
    room.roles.push({ name: role.definition.name, bytes: role.size });
  }
  const rooms = [...byDevice.values()];
  for (const room of rooms) {
    room.bytes = room.roles.reduce((n, r) => n + r.bytes, 0);
    room.needed = room.bytes + marginFor(room.bytes);
  }
  return rooms;
}

/** Bytes as an operator reads them, with the exact count. */
function shown(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i < 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]} (${n} bytes)`;
}

/** Words for one file system: what it has free and what the restore needs of it. */
export function describeRoom(room: RoomOnFileSystem): string {
  const roles = room.roles.map((r) => `${r.name} ${shown(r.bytes)}`).join(', ');
  return (
    `the file system mounted at ${room.mountPoint} has ${shown(room.free)} free, and the restore needs ${shown(room.needed)} of it ` +
    `(role${room.roles.length === 1 ? '' : 's'} ${roles}, and ${shown(room.needed - room.bytes)} kept free)`
  );
}

/** The file systems that lack room, or none. */
export function shortOf(rooms: RoomOnFileSystem[]): RoomOnFileSystem[] {
  return rooms.filter((r) => r.needed > r.free);
}

/** DestinationFull (exit 14) naming each file system that lacks room, before anything is written. */
export function destinationFull(backupName: string, short: RoomOnFileSystem[]): AzsError {
  const each = short.map(describeRoom).join('; ');
  const free = short.map((r) => `${shown(r.needed - r.free)} on ${r.mountPoint}`).join(', ');
  return new AzsError(`There is not enough room to restore backup ${backupName}: ${each}. Nothing was changed.`, {
    errorId: 'DestinationFull',
    category: 'QuotaExceeded',
    exitCode: ExitCode.Capacity,
    targetObject: short[0]!.mountPoint,
    recommendedAction:
      `Free space (at least ${free}) or grow the file system, then run the restore again. Every role is staged beside its destination ` +
      'before any goes into place, so roles restored one at a time (-RoleName) need room for one role at a time. On a compressing ' +
      'file system (Btrfs, ZFS), which holds them in less than they recorded, -SkipSpaceCheck stages them all the same.',
  });
}
