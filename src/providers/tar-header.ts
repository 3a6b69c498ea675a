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
  const seconds = floorSeconds(f.mtimeNs);
  const mtime = clampSeconds(seconds);
  const linkname = f.linkname ?? EMPTY;
  const records = paxRecords(f, linkname, seconds);
  // Every buffer is filled whole below (a block starts as a copy of BLANK), so none is zeroed first;
  // small ones come from Node's pool: a file's header takes no allocation of its own.
  if (!records) {
    const entry = Buffer.allocUnsafe(BLOCK);
    entryBlock(entry, 0, f, linkname, mtime);
    return entry;
  }
  const padded = records.length + paddingOf(records.length);
  const out = Buffer.allocUnsafe(2 * BLOCK + padded);
  ustarBlock(out, 0, EMPTY, 'x', 0o644, 0, 0, records.length, mtime, EMPTY, 0, 0, false);
  paxHeaderName(out, f.name);
  sealChecksum(out, 0);
  records.copy(out, BLOCK);
  out.fill(0, BLOCK + records.length, BLOCK + padded);
  entryBlock(out, BLOCK + padded, f, linkname, mtime);
  return out;
}

const EMPTY = Buffer.alloc(0);
const MAX_SECONDS = BigInt(MAX_OCTAL_12);

/** The pax records `f` needs, in GNU tar's order, or undefined when the ustar fields hold it all. */
function paxRecords(f: HeaderFields, linkname: Buffer, seconds: bigint): Buffer | undefined {
  const fraction = f.mtimeNs - seconds * NS_PER_S;
  const longName = f.name.length > 100;
  const longLink = linkname.length > 100;
  const bigSize = f.size > MAX_OCTAL_12;
  const bigUid = f.uid > MAX_OCTAL_8;
  const bigGid = f.gid > MAX_OCTAL_8;
  const time = fraction !== 0n || seconds < 0n || seconds > MAX_SECONDS;
  if (!longName && !longLink && !bigSize && !bigUid && !bigGid && !time) return undefined;
  // The usual case on ext4 and XFS: an mtime with nanoseconds, a short name.
  if (!longName && !longLink && !bigSize && !bigUid && !bigGid) return Buffer.from(paxText('mtime', paxTime(f.mtimeNs)), 'latin1');
  const records: Buffer[] = [];
  if (longName) records.push(paxRecord('path', f.name));
  if (longLink) records.push(paxRecord('linkpath', linkname));
  if (bigSize) records.push(Buffer.from(paxText('size', String(f.size)), 'latin1'));
  if (bigUid) records.push(Buffer.from(paxText('uid', String(f.uid)), 'latin1'));
  if (bigGid) records.push(Buffer.from(paxText('gid', String(f.gid)), 'latin1'));
  if (time) records.push(Buffer.from(paxText('mtime', paxTime(f.mtimeNs)), 'latin1'));
  return Buffer.concat(records);
}

/** The entry's own ustar block at `at`; a value too large for its field went into a pax record. */
function entryBlock(b: Buffer, at: number, f: HeaderFields, linkname: Buffer, mtime: number): void {
  const devmajor = f.devmajor ?? 0;
  const devminor = f.devminor ?? 0;
  if (devmajor > MAX_OCTAL_8 || devminor > MAX_OCTAL_8) {
    throw new RangeError(`the device numbers ${devmajor},${devminor} do not fit a tar header`);
  }
  ustarBlock(
    b,
    at,
    f.name,
    f.type,
    f.mode & 0o7777,
    f.uid > MAX_OCTAL_8 ? 0 : f.uid,
    f.gid > MAX_OCTAL_8 ? 0 : f.gid,
    f.size > MAX_OCTAL_12 ? 0 : f.size,
    mtime,
    linkname,
    devmajor,
    devminor,
    true,
  );
  sealChecksum(b, at);
}

/** A block with only the magic and version ("ustar\0" "00"): every header block starts as a copy. */
const BLANK = (() => {
  const b = Buffer.alloc(BLOCK);
  b.write('ustar\u000000', 257, 'latin1');
  return b;
})();
const TYPE_BYTE: Record<TypeFlag | 'x', number> = { 0: 0x30, 1: 0x31, 2: 0x32, 3: 0x33, 4: 0x34, 5: 0x35, 6: 0x36, x: 0x78 };

/**
 * The ustar block at `at`, its checksum field left as spaces (sealChecksum). GNU tar fills
 * devmajor/devminor on entries (`devFields`), and leaves them empty on extended headers.
 */
function ustarBlock(
  b: Buffer,
  at: number,
  name: Buffer,
  type: TypeFlag | 'x',
  mode: number,
  uid: number,
  gid: number,
  size: number,
  mtime: number,
  linkname: Buffer,
  devmajor: number,
  devminor: number,
  devFields: boolean,
): void {
  BLANK.copy(b, at);
  name.copy(b, at, 0, Math.min(100, name.length));
  octal(b, at + 100, 8, mode);
  octal(b, at + 108, 8, uid);
  octal(b, at + 116, 8, gid);
  octal(b, at + 124, 12, size);
  octal(b, at + 136, 12, mtime);
  b[at + 156] = TYPE_BYTE[type];
  linkname.copy(b, at + 157, 0, Math.min(100, linkname.length));
  if (devFields) {
    octal(b, at + 329, 8, devmajor);
    octal(b, at + 337, 8, devminor);
  }
}

/** The checksum: the sum of the block's bytes with its own field counted as spaces, in 6 octal digits, a NUL and a space. */
function sealChecksum(b: Buffer, at: number): void {
  b.fill(0x20, at + 148, at + 156);
  let sum = 0;
  for (let i = at; i < at + BLOCK; i++) sum += b[i]!;
  octal(b, at + 148, 7, sum);
  b[at + 155] = 0x20;
}

/** `value` (a whole number, 0 up to what len-1 octal digits hold) in octal, zero-padded to len-1 digits and a NUL. */
function octal(b: Buffer, at: number, len: number, value: number): void {
  let v = value;
  for (let i = at + len - 2; i >= at; i--) {
    const digit = v % 8;
    b[i] = 0x30 + digit;
    v = (v - digit) / 8;
  }
  b[at + len - 1] = 0;
}

/** "<length> <key>=<value>\n", where the length counts the whole record, its own digits included. */
function paxRecord(key: string, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${paxLength(key.length + value.length + 3)} ${key}=`, 'latin1'), value, Buffer.from('\n')]);
}

/** paxRecord() of an ASCII value, as text. */
function paxText(key: string, value: string): string {
  return `${paxLength(key.length + value.length + 3)} ${key}=${value}\n`;
}

/** The length of a record whose other parts take `rest` bytes: `rest` plus its own digits. */
function paxLength(rest: number): number {
  let length = rest + String(rest).length;
  if (String(length).length > String(rest).length) length++;
  return length;
}

/** "./dir/PaxHeaders/base" (at most 100 bytes), GNU tar's name for an entry's extended header, into the block at 0. */
function paxHeaderName(b: Buffer, name: Buffer): void {
  const end = name.length > 1 && name[name.length - 1] === 0x2f ? name.length - 1 : name.length;
  const slash = end === 0 ? -1 : name.lastIndexOf(0x2f, end - 1);
  let p = 0;
  const put = (from: Buffer, start: number, stop: number): void => {
    p += from.copy(b, p, start, Math.min(stop, start + 100 - p));
  };
  if (slash < 0) put(DOT, 0, 1);
  else put(name, 0, slash);
  put(PAX_HEADERS, 0, PAX_HEADERS.length);
  put(name, slash + 1, end);
}

const DOT = Buffer.from('.');
const PAX_HEADERS = Buffer.from('/PaxHeaders/');

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
  const whole = abs / NS_PER_S;
  // Nine digits less the trailing zeros.
  let fraction = Number(abs - whole * NS_PER_S);
  let digits = 9;
  while (fraction !== 0 && fraction % 10 === 0) {
    fraction /= 10;
    digits--;
  }
  return `${negative ? '-' : ''}${whole}${fraction === 0 ? '' : `.${String(fraction).padStart(digits, '0')}`}`;
}

/** The two zero blocks that end an archive. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
