import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Who owns a leftover file: a process named so that "it is dead" can be proven, not guessed. A pid
 * alone is reused; a pid with its start time (in clock ticks since boot, /proc/<pid>/stat field
 * 22) and the boot it belongs to (/proc/sys/kernel/random/boot_id) names one process for ever. The
 * host is part of it too, for folders on a file system several machines share: a process of
 * another host is never judged. And so is the PID namespace the pid is numbered in: a container
 * that shares this host's name and AZSBACKUP_HOME numbers its processes from 1, and its pid looked
 * up here is another process or none.
 *
 * The tag form, `<host>-<boot>-<pid>-<start>-<pidns>` (host: 8 hex of SHA-256 of the host name;
 * boot: the boot id's first 8 hex digits; pidns: the PID namespace's inode number), names the
 * private folders; swap journals hold the same fields. Earlier versions wrote no `-<pidns>`: such a
 * name or journal is judged as one of this namespace, as they judged it.
 */

export interface Owner {
  host: string;
  boot: string;
  pid: number;
  start: string;
  /** The PID namespace `pid` is numbered in ("pid:[4026531836]"); absent where it could not be read, and in what earlier versions wrote. */
  pidNamespace?: string;
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

let ownNamespace: string | undefined | null;

/**
 * The PID namespace this process runs in ("pid:[4026531836]"), undefined without /proc. A pid means
 * something only in its namespace: a container's process 2 is another process (or none) on the
 * host, and the host's pids do not exist in the container.
 */
export function pidNamespace(): string | undefined {
  if (ownNamespace === undefined) {
    const ns = namespaceOf('self');
    ownNamespace = ns === 'hidden' ? null : (ns ?? null);
  }
  return ownNamespace ?? undefined;
}

/** The PID namespace of `pid` ('self' for this process); 'hidden' when it exists but may not be looked at. */
function namespaceOf(pid: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch (e) {
    // EACCES, EPERM: another account's process. ENOENT: it has ended (or there is no /proc).
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : 'hidden';
  }
}

/**
 * The host's own PID namespace: its inode number is fixed in the kernel (PROC_PID_INIT_INO). Every
 * other namespace lies inside it, so from there a namespace none of whose processes is visible
 * has ended.
 */
const INIT_PID_NAMESPACE = 'pid:[4026531836]';

/**
 * Whether the process numbered `pid` in PID namespace `ns` (not this process's) and started at
 * `start` still runs, as far as this process can see: true when it is found; false when that
 * namespace's processes are visible here (it lies inside ours) and it is not among them, or when
 * this is the host's namespace and none is (the namespace has ended: a container stopped or
 * killed); undefined when none is visible from another namespace (the host seen from a container,
 * or another container), or a process could not be looked at.
 */
export function aliveInPidNamespace(ns: string, pid: number, start: string | null): boolean | undefined {
  let visible = false;
  let hidden = false;
  for (const entry of readProcDir()) {
    const link = namespaceOf(entry);
    if (link !== ns && link !== 'hidden') continue;
    const nspid = nsPids(entry);
    if (link === 'hidden') {
      // One we may not look at, in our own namespace (one pid), is not in `ns`; one inside another might be.
      hidden ||= nspid.length !== 1;
      continue;
    }
    visible = true;
    if (Number(nspid.at(-1)) === pid && (start === null || startTimeOf(Number(entry)) === start)) return true;
  }
  return !hidden && (visible || pidNamespace() === INIT_PID_NAMESPACE) ? false : undefined;
}

/** NSpid of /proc/<pid>/status (readable for any process): its pid in each namespace from ours inward; the last is its own. */
function nsPids(pid: string): string[] {
  return (
    /^NSpid:\s*(.*)$/m
      .exec(readProc(`/proc/${pid}/status`) ?? '')?.[1]
      ?.trim()
      .split(/\s+/) ?? []
  );
}

function readProcDir(): string[] {
  try {
    return readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
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
    const ns = pidNamespace();
    self = boot && start ? { host: hostTag(), boot, pid: process.pid, start, ...(ns ? { pidNamespace: ns } : {}) } : null;
  }
  return self ?? undefined;
}

/** "pid:[4026531836]" -> "4026531836"; undefined for anything else. */
function namespaceInode(ns: string | undefined): string | undefined {
  return ns === undefined ? undefined : /^pid:\[(\d{1,20})\]$/.exec(ns)?.[1];
}

export function ownerTag(o: Owner): string {
  const ns = namespaceInode(o.pidNamespace);
  return `${o.host}-${o.boot}-${o.pid}-${o.start}${ns ? `-${ns}` : ''}`;
}

/** An owner tag, with or without the PID namespace earlier versions did not write. */
export function parseOwnerTag(tag: string): Owner | undefined {
  const m = /^([0-9a-f]{8})-([0-9a-f]{8})-(\d{1,10})-(\d{1,20})(?:-(\d{1,20}))?$/.exec(tag);
  if (!m) return undefined;
  return { host: m[1]!, boot: m[2]!, pid: Number(m[3]), start: m[4]!, ...(m[5] ? { pidNamespace: `pid:[${m[5]}]` } : {}) };
}

/**
 * True only when `o` has provably ended: it ran on this host, and either in an earlier boot, or
 * its pid is gone or now belongs to a process that started at another time, in its own PID
 * namespace (one inside ours is looked into; from the host's, one with no process left has ended).
 * Anything else (another host, a namespace that cannot be seen from here, no /proc, a malformed
 * record, the process still running) is false.
 */
export function provablyDead(o: Owner | undefined): boolean {
  const me = currentOwner();
  if (!me || !o || o.host !== me.host) return false;
  if (o.boot !== me.boot) return true;
  if (o.pidNamespace !== undefined && o.pidNamespace !== me.pidNamespace) {
    if (namespaceInode(o.pidNamespace) === undefined) return false;
    return aliveInPidNamespace(o.pidNamespace, o.pid, o.start) === false;
  }
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
