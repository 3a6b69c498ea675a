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

/**
 * Which encoding of headers this is. The files cache (src/engine/files-cache.ts) records it with
 * a file's mode, owner, name, size and mtime instead of the header's bytes, and takes a file as
 * unchanged only when all of them are as recorded: so a change to what encodeHeader() writes for
 * the same fields must come with a new number here (the golden headers of tar-writer.test.ts fail
 * until it does), or files cached before it would keep their old headers.
 */
export const HEADER_FORMAT = 1;

/**
 * The encoding of a header that carries extended attributes (SCHILY.xattr records, which version 1
 * never wrote): the files cache records it for such a file, so a file it cached before attributes
 * were archived is read again once, while a file without any keeps its version 1 records.
 */
export const HEADER_FORMAT_WITH_XATTRS = 2;

/** An extended attribute as a header carries it (a pax record `SCHILY.xattr.<name>=<value>`, as GNU tar --xattrs writes). */
export interface Xattr {
  name: string;
  value: Buffer;
}

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
  /** Extended attributes, in the order given (the caller sorts them). */
  xattrs?: readonly Xattr[];
}

/** Zero bytes that bring `size` to a multiple of 512. */
export function paddingOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** The pax extended header's blocks (if any) and the ustar header block, as one buffer. */
export function encodeHeader(f: HeaderFields): Buffer {
  const time = mtimeOf(f.mtimeNs);
  const linkname = f.linkname ?? EMPTY;
  const records = paxRecords(f, linkname, time);
  // Every byte is written below (a block starts as a copy of a template), so none is zeroed first;
  // small ones come from Node's pool: a file's header takes no allocation of its own.
  if (!records) {
    const entry = Buffer.allocUnsafe(BLOCK);
    entryBlock(entry, 0, f, linkname, time.field);
    return entry;
  }
  const padded = records.length + paddingOf(records.length);
  const out = Buffer.allocUnsafe(2 * BLOCK + padded);
  // The extended header's name is written first: the block's checksum counts it.
  fill.call(out, 0, 0, 100);
  const nameSum = paxHeaderName(out, f.name);
  ustarBlock(out, 0, undefined, nameSum, 'x', 0o644, 0, 0, records.length, time.field, EMPTY, 0, 0, false);
  if (typeof records === 'string') out.write(records, BLOCK, 'latin1');
  else records.copy(out, BLOCK);
  fill.call(out, 0, BLOCK + records.length, BLOCK + padded);
  entryBlock(out, BLOCK + padded, f, linkname, time.field);
  return out;
}

const EMPTY = Buffer.alloc(0);
/**
 * Uint8Array's own fill(): Buffer's checks its arguments in JavaScript first, which costs more than
 * the fill itself in a process whose JIT has not caught up (a backup encodes a header per file).
 */
const fill = Uint8Array.prototype.fill;

/** An mtime as a header takes it, from two BigInt operations (each allocates). */
interface Mtime {
  /** Whole seconds toward zero, and the nanoseconds left (of the time's sign, |part| < 1e9). */
  whole: number;
  part: number;
  /** The ustar field: seconds rounded down, clamped to what 11 octal digits hold. */
  field: number;
  /** Whether the field does not say it exactly: a pax mtime record is needed. */
  inexact: boolean;
}

function mtimeOf(ns: bigint): Mtime {
  const whole = ns / NS_PER_S;
  const part = Number(ns - whole * NS_PER_S);
  // |whole| < 2^34 for any 64-bit time in nanoseconds: exact as a number.
  const truncated = Number(whole);
  const seconds = part < 0 ? truncated - 1 : truncated;
  const field = Math.max(0, Math.min(seconds, MAX_OCTAL_12));
  return { whole: truncated, part, field, inexact: part !== 0 || field !== seconds };
}

/**
 * The pax records `f` needs, in GNU tar's order, or undefined when the ustar fields hold it all;
 * as ASCII text when that is all they hold.
 */
function paxRecords(f: HeaderFields, linkname: Buffer, time: Mtime): Buffer | string | undefined {
  const longName = f.name.length > 100;
  const longLink = linkname.length > 100;
  const bigSize = f.size > MAX_OCTAL_12;
  const bigUid = f.uid > MAX_OCTAL_8;
  const bigGid = f.gid > MAX_OCTAL_8;
  const xattrs = f.xattrs ?? [];
  if (!longName && !longLink && !bigSize && !bigUid && !bigGid && xattrs.length === 0) {
    // The usual case on ext4 and XFS: an mtime with nanoseconds, a short name.
    return time.inexact ? paxText('mtime', paxDecimal(time)) : undefined;
  }
  const records: Buffer[] = [];
  if (longName) records.push(paxRecord('path', f.name));
  if (longLink) records.push(paxRecord('linkpath', linkname));
  if (bigSize) records.push(Buffer.from(paxText('size', String(f.size)), 'latin1'));
  if (bigUid) records.push(Buffer.from(paxText('uid', String(f.uid)), 'latin1'));
  if (bigGid) records.push(Buffer.from(paxText('gid', String(f.gid)), 'latin1'));
  if (time.inexact) records.push(Buffer.from(paxText('mtime', paxDecimal(time)), 'latin1'));
  for (const x of xattrs) records.push(paxRecord(`SCHILY.xattr.${x.name}`, x.value));
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
    0,
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
}

/**
 * The blocks every header block starts as a copy of (but for its name): every numeric field "0…0"
 * and a NUL, the checksum field as spaces, the magic and version ("ustar\0" "00"); an extended header leaves
 * devmajor/devminor empty, as GNU tar does. A field then takes only its non-zero digits, and the
 * checksum is the template's sum plus what was written, so no loop runs over the whole block.
 */
function template(devFields: boolean): { tail: Buffer; sum: number } {
  const b = Buffer.alloc(BLOCK);
  const zeros = (at: number, len: number) => b.fill(0x30, at, at + len - 1);
  zeros(100, 8);
  zeros(108, 8);
  zeros(116, 8);
  zeros(124, 12);
  zeros(136, 12);
  b.fill(0x20, 148, 156);
  b.write('ustar\u000000', 257, 'latin1');
  if (devFields) {
    zeros(329, 8);
    zeros(337, 8);
  }
  return { tail: b.subarray(100), sum: sumOf(b, 0, BLOCK) };
}
const ENTRY = template(true);
const EXTENDED = template(false);
const TYPE_BYTE: Record<TypeFlag | 'x', number> = { 0: 0x30, 1: 0x31, 2: 0x32, 3: 0x33, 4: 0x34, 5: 0x35, 6: 0x36, x: 0x78 };

/**
 * The ustar block at `at`, checksum included. GNU tar fills devmajor/devminor on entries
 * (`devFields`), and leaves them empty on extended headers. `name` is left out when the caller
 * writes it (paxHeaderName), and `nameSum` is then the sum of its bytes.
 */
function ustarBlock(
  b: Buffer,
  at: number,
  name: Buffer | undefined,
  nameSum: number,
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
  const blank = devFields ? ENTRY : EXTENDED;
  b.set(blank.tail, at + 100);
  let sum = blank.sum + nameSum + TYPE_BYTE[type];
  if (name) {
    fill.call(b, 0, at, at + 100);
    sum += copySummed(name, b, at, 100);
  }
  sum += octal(b, at + 100, 8, mode);
  sum += octal(b, at + 108, 8, uid);
  sum += octal(b, at + 116, 8, gid);
  sum += octal(b, at + 124, 12, size);
  sum += octal(b, at + 136, 12, mtime);
  b[at + 156] = TYPE_BYTE[type];
  if (linkname.length > 0) sum += copySummed(linkname, b, at + 157, 100);
  if (devFields) {
    sum += octal(b, at + 329, 8, devmajor);
    sum += octal(b, at + 337, 8, devminor);
  }
  // The sum counted the checksum field as eight spaces; it holds six octal digits, a NUL and a space.
  fill.call(b, 0x30, at + 148, at + 154);
  b[at + 154] = 0;
  octal(b, at + 148, 7, sum);
}

/** The first `max` bytes (at most) of `from` copied to `b` at `at`; the sum of the bytes copied. */
function copySummed(from: Buffer, b: Buffer, at: number, max: number): number {
  const n = Math.min(max, from.length);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    b[at + i] = from[i]!;
    sum += from[i]!;
  }
  return sum;
}

function sumOf(b: Buffer, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += b[i]!;
  return sum;
}

/**
 * `value` (a whole number, 0 up to what len-1 octal digits hold) in octal, zero-padded to len-1
 * digits and a NUL, over a field that holds "0…0" and a NUL already: only the digits from the
 * lowest to the highest non-zero one are written. Returns what the field's byte sum grew by.
 */
function octal(b: Buffer, at: number, len: number, value: number): number {
  let v = value;
  let added = 0;
  let i = at + len - 2;
  for (; v > 0xffffffff; i--) {
    const digit = v % 8;
    b[i] = 0x30 + digit;
    added += digit;
    v = (v - digit) / 8;
  }
  // Below 2^32 (all but sizes from 4 GiB and times after 2106): bit operations.
  for (; v > 0; i--, v >>>= 3) {
    const digit = v & 7;
    b[i] = 0x30 + digit;
    added += digit;
  }
  return added;
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

/**
 * "./dir/PaxHeaders/base" (at most 100 bytes), GNU tar's name for an entry's extended header,
 * written into the block at 0 (zeros there); the sum of its bytes.
 */
function paxHeaderName(b: Buffer, name: Buffer): number {
  const end = name.length > 1 && name[name.length - 1] === 0x2f ? name.length - 1 : name.length;
  // Loops, not lastIndexOf() and copy(): their argument checks cost more than a name's few bytes.
  let slash = end - 1;
  while (slash >= 0 && name[slash] !== 0x2f) slash--;
  let p = 0;
  let sum = 0;
  const put = (from: Uint8Array, start: number, stop: number): void => {
    for (let i = start; i < stop && p < 100; i++, p++) {
      b[p] = from[i]!;
      sum += from[i]!;
    }
  };
  if (slash < 0) put(DOT, 0, 1);
  else put(name, 0, slash);
  put(PAX_HEADERS, 0, PAX_HEADERS.length);
  put(name, slash + 1, end);
  return sum;
}

const DOT = Buffer.from('.');
const PAX_HEADERS = Buffer.from('/PaxHeaders/');

/** A time in nanoseconds as a pax decimal: "-2.5", "1700000000.123456789", "12". */
export function paxTime(ns: bigint): string {
  return paxDecimal(mtimeOf(ns));
}

/** Sign, whole seconds and the nine digits of the rest without their trailing zeros (GNU tar's way). */
function paxDecimal({ whole, part }: Mtime): string {
  const negative = whole < 0 || part < 0;
  let fraction = Math.abs(part);
  let digits = 9;
  while (fraction !== 0 && fraction % 10 === 0) {
    fraction /= 10;
    digits--;
  }
  return `${negative ? '-' : ''}${Math.abs(whole)}${fraction === 0 ? '' : `.${String(fraction).padStart(digits, '0')}`}`;
}

/** The two zero blocks that end an archive. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
