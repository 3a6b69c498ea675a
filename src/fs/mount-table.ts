import { promises as fs } from 'node:fs';

/** One line of /proc/self/mountinfo ("36 35 0:42 / /dev/shm rw - tmpfs tmpfs rw"). */
export interface Mount {
  /** Where it is mounted, unescaped (the file writes space, tab, new line and backslash as \ooo). */
  point: string;
  /** st_dev of what is mounted there, from its major:minor as glibc's makedev() encodes them. */
  dev: bigint;
  /** The file system type (tmpfs, ext4, ...). */
  type: string;
}

/** This process's mounts, in the order the kernel lists them; undefined where /proc is not mounted. */
export async function mountTable(): Promise<Mount[] | undefined> {
  const table = await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => undefined);
  if (table === undefined) return undefined;
  const mounts: Mount[] = [];
  for (const line of table.split('\n')) {
    const fields = line.split(' ');
    const device = /^(\d+):(\d+)$/.exec(fields[2] ?? '');
    if (!device || fields[4] === undefined) continue;
    mounts.push({
      point: fields[4].replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))),
      dev: makedev(BigInt(device[1]!), BigInt(device[2]!)),
      type: line.split(' - ')[1]?.split(' ')[0] ?? '',
    });
  }
  return mounts;
}

function makedev(major: bigint, minor: bigint): bigint {
  return (minor & 0xffn) | ((major & 0xfffn) << 8n) | ((minor & ~0xffn) << 12n) | ((major & ~0xfffn) << 32n);
}
