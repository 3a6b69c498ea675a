/**
 * The header of one tar entry as the directory provider writes it: POSIX.1-2001 pax (IEEE Std
 * 1003.1, "pax Interchange Format"), the way GNU tar's --format=posix writes a folder. A ustar
 * header block, preceded by a pax extended header ('x') only when a value does not fit the ustar
 * fields:
 * - `path` / `linkpath` for a name or a link target over 100 bytes (no ustar prefix splitting, so
 *   the rule is one comparison);
 * - `size` from 8 GiB on, `uid` / `gid` from 2^21 on;
 * - `mtime` when it has a fraction of a second or lies outside the ustar field (before 1970),
 *   written as GNU tar writes it: seconds, a dot and up to nine digits without trailing zeros.
 *
 * The bytes depend only on what is passed here, never on the time of writing, atime or ctime, so an
 * unchanged file gives the same header from one backup to the next (the files cache relies on it).
 * Owners are numeric only (uname and gname empty, as with --numeric-owner). Names and link targets
 * are bytes, written as the file system gave them.
 */

export const BLOCK = 512;

/** The largest values of the 8- and 12-byte octal fields (7 and 11 digits and a NUL). */
const MAX_OCTAL_8 = 0o7777777;
const MAX_OCTAL_12 = 0o77777777777;
const NS_PER_S = 1_000_000_000n;

export type TypeFlag = '0' | '1' | '2' | '3' | '4' | '5' | '6';

export interface HeaderFields {
  /** The name in the archive, e.g. "./conf/app.conf" or "./conf/" for a folder. */
  name: Buffer;
  type: TypeFlag;
  /** Permission bits and set-id/sticky bits (st_mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow the header (0 for all but regular files). */
  size: number;
  /** Modification time in nanoseconds since the epoch. */
  mtimeNs: bigint;
  /** Symbolic link target, or the name of the entry a hard link points to. */
  linkname?: Buffer;
  devmajor?: number;
  devminor?: number;
}

/** Zero bytes that bring `size` to a multiple of 512. */
export function paddingOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** The pax extended header's blocks (if any) and the ustar header block, as one buffer. */
export function encodeHeader(f: HeaderFields): Buffer {
  const records: Buffer[] = [];
  if (f.name.length > 100) records.push(paxRecord('path', f.name));
  if (f.linkname && f.linkname.length > 100) records.push(paxRecord('linkpath', f.linkname));
  if (f.size > MAX_OCTAL_12) records.push(paxRecord('size', Buffer.from(String(f.size))));
  if (f.uid > MAX_OCTAL_8) records.push(paxRecord('uid', Buffer.from(String(f.uid))));
  if (f.gid > MAX_OCTAL_8) records.push(paxRecord('gid', Buffer.from(String(f.gid))));
  const seconds = floorSeconds(f.mtimeNs);
  if (f.mtimeNs % NS_PER_S !== 0n || seconds < 0n || seconds > BigInt(MAX_OCTAL_12)) {
    records.push(paxRecord('mtime', Buffer.from(paxTime(f.mtimeNs))));
  }
  const mtime = clampSeconds(seconds);
  const entry = ustarBlock({
    name: f.name,
    type: f.type,
    mode: f.mode & 0o7777,
    uid: f.uid > MAX_OCTAL_8 ? 0 : f.uid,
    gid: f.gid > MAX_OCTAL_8 ? 0 : f.gid,
    size: f.size > MAX_OCTAL_12 ? 0 : f.size,
    mtime,
    linkname: f.linkname ?? Buffer.alloc(0),
    devmajor: f.devmajor ?? 0,
    devminor: f.devminor ?? 0,
    devFields: true,
  });
  if (records.length === 0) return entry;
  const body = Buffer.concat(records);
  const extended = ustarBlock({
    name: paxHeaderName(f.name),
    type: 'x',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime,
    linkname: Buffer.alloc(0),
    devmajor: 0,
    devminor: 0,
    devFields: false,
  });
  return Buffer.concat([extended, body, Buffer.alloc(paddingOf(body.length)), entry]);
}

interface UstarFields {
  name: Buffer;
  type: TypeFlag | 'x';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: Buffer;
  devmajor: number;
  devminor: number;
  /** GNU tar fills devmajor/devminor on entries, and leaves them empty on extended headers. */
  devFields: boolean;
}

function ustarBlock(u: UstarFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  u.name.copy(b, 0, 0, Math.min(100, u.name.length));
  octal(b, 100, 8, u.mode);
  octal(b, 108, 8, u.uid);
  octal(b, 116, 8, u.gid);
  octal(b, 124, 12, u.size);
  octal(b, 136, 12, u.mtime);
  b.write(u.type, 156, 'latin1');
  u.linkname.copy(b, 157, 0, Math.min(100, u.linkname.length));
  b.write('ustar\u000000', 257, 'latin1');
  if (u.devFields) {
    if (u.devmajor > MAX_OCTAL_8 || u.devminor > MAX_OCTAL_8) {
      throw new RangeError(`the device numbers ${u.devmajor},${u.devminor} do not fit a tar header`);
    }
    octal(b, 329, 8, u.devmajor);
    octal(b, 337, 8, u.devminor);
  }
  // The checksum is the sum of the block's bytes with its own field counted as spaces.
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
  return b;
}

/** `value` in octal, zero-padded to len-1 digits and a NUL. */
function octal(b: Buffer, at: number, len: number, value: number): void {
  b.write(`${value.toString(8).padStart(len - 1, '0')}\u0000`, at, 'latin1');
}

/** "<length> <key>=<value>\n", where the length counts the whole record, its own digits included. */
function paxRecord(key: string, value: Buffer): Buffer {
  const rest = key.length + value.length + 3;
  let length = rest + String(rest).length;
  if (String(length).length > String(rest).length) length++;
  return Buffer.concat([Buffer.from(`${length} ${key}=`, 'latin1'), value, Buffer.from('\n')]);
}

/** "./dir/PaxHeaders/base" (at most 100 bytes), GNU tar's name for an entry's extended header. */
function paxHeaderName(name: Buffer): Buffer {
  const trimmed = name.length > 1 && name[name.length - 1] === 0x2f ? name.subarray(0, name.length - 1) : name;
  const slash = trimmed.lastIndexOf(0x2f);
  const dir = slash < 0 ? Buffer.from('.') : trimmed.subarray(0, slash);
  const base = trimmed.subarray(slash + 1);
  const full = Buffer.concat([dir, Buffer.from('/PaxHeaders/'), base]);
  return full.subarray(0, 100);
}

function floorSeconds(ns: bigint): bigint {
  const s = ns / NS_PER_S;
  return ns < 0n && s * NS_PER_S !== ns ? s - 1n : s;
}

function clampSeconds(s: bigint): number {
  return s < 0n ? 0 : s > BigInt(MAX_OCTAL_12) ? MAX_OCTAL_12 : Number(s);
}

/** A time in nanoseconds as a pax decimal: "-2.5", "1700000000.123456789", "12". */
export function paxTime(ns: bigint): string {
  const negative = ns < 0n;
  const abs = negative ? -ns : ns;
  const fraction = (abs % NS_PER_S).toString().padStart(9, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${abs / NS_PER_S}${fraction ? `.${fraction}` : ''}`;
}

/** The two zero blocks that end an archive. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
