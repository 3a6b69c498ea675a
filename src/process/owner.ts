import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Who owns a leftover file: a process named so that "it is dead" can be proven, not guessed. A pid
 * alone is reused; a pid with its start time (in clock ticks since boot, /proc/<pid>/stat field
 * 22) and the boot it belongs to (/proc/sys/kernel/random/boot_id) names one process for ever. The
 * host is part of it too, for folders on a file system several machines share: a process of
 * another host is never judged.
 *
 * The tag form, `<host>-<boot>-<pid>-<start>` (host: 8 hex of SHA-256 of the host name; boot: the
 * boot id's first 8 hex digits), names the private folders; swap journals hold the same fields.
 */

export interface Owner {
  host: string;
  boot: string;
  pid: number;
  start: string;
}

function readProc(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Field 22 (starttime) of /proc/<pid>/stat; the command name (field 2) may hold spaces and ')'. */
export function startTimeOf(pid: number): string | undefined {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

function bootId(): string | undefined {
  return readProc('/proc/sys/kernel/random/boot_id')?.trim().replace(/-/g, '').slice(0, 8).toLowerCase();
}

function hostTag(): string {
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
}

let self: Owner | undefined | null;

/** This process, or undefined where /proc cannot name it (then nothing it leaves is ever judged dead). */
export function currentOwner(): Owner | undefined {
  if (self === undefined) {
    const boot = bootId();
    const start = startTimeOf(process.pid);
    self = boot && start ? { host: hostTag(), boot, pid: process.pid, start } : null;
  }
  return self ?? undefined;
}

export function ownerTag(o: Owner): string {
  return `${o.host}-${o.boot}-${o.pid}-${o.start}`;
}

export function parseOwnerTag(tag: string): Owner | undefined {
  const m = /^([0-9a-f]{8})-([0-9a-f]{8})-(\d{1,10})-(\d{1,20})$/.exec(tag);
  return m ? { host: m[1]!, boot: m[2]!, pid: Number(m[3]), start: m[4]! } : undefined;
}

/**
 * True only when `o` has provably ended: it ran on this host, and either in an earlier boot, or
 * its pid is gone or now belongs to a process that started at another time. Anything else
 * (another host, no /proc, a malformed record, the process still running) is false.
 */
export function provablyDead(o: Owner | undefined): boolean {
  const me = currentOwner();
  if (!me || !o || o.host !== me.host) return false;
  if (o.boot !== me.boot) return true;
  if (o.pid === me.pid) return o.start !== me.start;
  const start = startTimeOf(o.pid);
  return start === undefined ? !processExists(o.pid) : start !== o.start;
}

/** /proc/<pid> unreadable: the pid is free unless the process exists but hides (EPERM means it exists). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
