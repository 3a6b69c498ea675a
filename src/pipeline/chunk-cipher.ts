/**
 * Chunked authenticated encryption of one stored file (a role's compressed data).
 *
 * FORMAT v1 (all integers big-endian)
 *
 *   file    = header || chunk[0] || chunk[1] || ... || chunk[n-1]        (n >= 1)
 *   header  = 48 bytes:
 *     0..7    magic       "AZSCHUNK" (ASCII)
 *     8       version     0x01
 *     9       suite       0x01 = HKDF-SHA256 + AES-256-GCM
 *     10..11  reserved    0x0000 (rejected otherwise)
 *     12..15  chunkSize   uint32: plaintext bytes in every chunk but the last (4 KiB ..= 64 MiB)
 *     16..47  salt        32 random bytes, fresh for every file
 *   chunk[i] = AES-256-GCM(fileKey, nonce_i, aad = header, plaintext_i) = ciphertext_i || tag_i (16 bytes)
 *     plaintext_i is exactly chunkSize bytes for i < n-1; the last holds 1..chunkSize bytes,
 *     or 0 bytes when the whole input is empty (then n = 1).
 *   nonce_i  = 12 bytes: 0x00 0x00 0x00 || uint64(i) || lastFlag, lastFlag = 0x01 for chunk n-1, else 0x00
 *   fileKey  = HKDF-SHA256(ikm = dataKey (32 bytes), salt = header.salt, L = 32,
 *                          info = "AzsBackup chunk key v1" || 0x00 || SHA-256(binding))
 *   binding  = uint32(len b) || b || uint32(len r) || r || uint32(len f) || f
 *              with b, r, f the UTF-8 backup name, role name and file name
 *
 * Why: the random salt gives every file its own key, so a counter nonce never repeats under a key;
 * the binding makes a file copied from another backup, role or file name fail on its first chunk;
 * the index in the nonce catches reordered and dropped chunks; the last flag catches truncation,
 * also at a chunk boundary; the header as AAD catches any change to it. The binding is hashed
 * because HKDF info is limited to 1024 bytes in Node and names are not.
 *
 * The decryptor authenticates every chunk before it releases a byte of it, and holds back the
 * final full-size record until it knows whether more follows, so it never has to guess the flag.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { AzsError, ExitCode } from '../errors.js';
import { gcmAddon, type OpenInto, type SealInto } from '../native/aes-gcm.js';
import { ByteQueue } from './byte-queue.js';
import { SlabPool } from '../memory/slab-pool.js';

export interface ChunkCipherOptions {
  /** The backup's 32-byte data key. */
  dataKey: Buffer;
  backupName: string;
  roleName: string;
  /** The stored file's name within the backup (e.g. "Identity.azsbak"). */
  fileName: string;
  /** Plaintext bytes per chunk when encrypting; the decryptor reads it from the header. */
  chunkSize?: number;
}

export const CHUNK_MAGIC = Buffer.from('AZSCHUNK', 'ascii');
export const CHUNK_FORMAT_VERSION = 1;
export const CHUNK_SUITE_AES256GCM = 1;
export const CHUNK_HEADER_BYTES = 48;
export const CHUNK_TAG_BYTES = 16;
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
export const MIN_CHUNK_SIZE = 4 * 1024;
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;
const SALT_BYTES = 32;
/**
 * Cipher updates are fed at most this much at a time: every update allocates its output, and
 * without the allocator addon (src/native) outputs above glibc's mmap threshold (128 KiB) cost
 * page faults that made AES-GCM run at a quarter of its speed in scripts/bench-pipeline.ts. With
 * the addon, 64 KiB and 1 MiB updates ran alike (236 and 233 ms for 270 MiB).
 */
const UPDATE_BYTES = 64 * 1024;
const KEY_INFO_LABEL = Buffer.from('AzsBackup chunk key v1\0', 'ascii');

function integrityError(errorId: string, message: string, opts: ChunkCipherOptions, chunk?: number, cause?: unknown): AzsError {
  return new AzsError(message, {
    errorId,
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    targetObject: { BackupName: opts.backupName, RoleName: opts.roleName, FileName: opts.fileName, Chunk: chunk ?? null },
    recommendedAction:
      'The stored file was changed, truncated, or does not belong to this backup and role. Restore from another backup, ' +
      'and check the share (Test-InfrastructureBackup checks every file).',
    cause,
  });
}

function fileKey(opts: ChunkCipherOptions, salt: Buffer): Buffer {
  if (!Buffer.isBuffer(opts.dataKey) || opts.dataKey.length !== 32) {
    throw new AzsError('A data key must be 32 bytes.', {
      errorId: 'InvalidDataKey',
      category: 'InvalidArgument',
      exitCode: ExitCode.Failure,
    });
  }
  const binding = createHash('sha256');
  for (const field of [opts.backupName, opts.roleName, opts.fileName]) {
    const bytes = Buffer.from(field, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    binding.update(len).update(bytes);
  }
  const info = Buffer.concat([KEY_INFO_LABEL, binding.digest()]);
  return Buffer.from(hkdfSync('sha256', opts.dataKey, salt, info, 32));
}

function nonceFor(index: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(BigInt(index), 3);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

function checkChunkSize(size: number): number {
  if (!Number.isInteger(size) || size < MIN_CHUNK_SIZE || size > MAX_CHUNK_SIZE) {
    throw new AzsError(`A chunk size of ${String(size)} bytes is outside ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}.`, {
      errorId: 'InvalidChunkSize',
      category: 'InvalidArgument',
      exitCode: ExitCode.Failure,
    });
  }
  return size;
}

/** A record's slices as the ciphertext's slices and the 16-byte tag after them. */
function splitRecord(record: Buffer[], bodyLength: number): { body: Buffer[]; tag: Buffer } {
  const body: Buffer[] = [];
  const tagParts: Buffer[] = [];
  let remaining = bodyLength;
  for (const slice of record) {
    const n = Math.max(0, Math.min(slice.length, remaining));
    if (n > 0) body.push(slice.subarray(0, n));
    if (n < slice.length) tagParts.push(slice.subarray(n));
    remaining -= n;
  }
  return { body, tag: tagParts.length === 1 ? tagParts[0]! : Buffer.concat(tagParts) };
}

/** The encrypting half as a plain object, so composed stages can call it without stream overhead. */
export class ChunkSealer {
  private readonly header: Buffer;
  private readonly key: Buffer;
  private readonly chunkSize: number;
  private readonly pending = new ByteQueue({ trackConsumed: true });
  private index = 0;
  private headerSent = false;
  /** With the addon, a chunk is encrypted in one call into one buffer, tag included, from here. */
  private readonly sealInto: SealInto | undefined = gcmAddon()?.seal;
  private recordPool: SlabPool | undefined;

  constructor(opts: ChunkCipherOptions) {
    this.chunkSize = checkChunkSize(opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
    const salt = randomBytes(SALT_BYTES);
    this.header = Buffer.alloc(CHUNK_HEADER_BYTES);
    CHUNK_MAGIC.copy(this.header, 0);
    this.header[8] = CHUNK_FORMAT_VERSION;
    this.header[9] = CHUNK_SUITE_AES256GCM;
    this.header.writeUInt32BE(this.chunkSize, 12);
    salt.copy(this.header, 16);
    this.key = fileKey(opts, salt);
  }

  get chunkBytes(): number {
    return this.chunkSize;
  }

  /**
   * The reader of the sealed records is done with `piece` (a record this sealer wrote out: the
   * target has stored it), so a later chunk may be sealed into its memory. Anything else is ignored.
   */
  recycle(piece: Buffer): void {
    this.recordPool?.recycle(piece);
  }

  /** The input buffers sealed to their last byte since the last call: nothing here holds them any more. */
  consumedInput(): Buffer[] {
    return this.pending.takeConsumed();
  }

  private seal(slices: Buffer[], last: boolean, out: Buffer[]): void {
    if (!this.headerSent) {
      // A copy: the header is every chunk's AAD, and whoever stores the output may hand it back.
      out.push(Buffer.from(this.header));
      this.headerSent = true;
    }
    const nonce = nonceFor(this.index, last);
    if (this.sealInto) {
      const length = slices.reduce((n, s) => n + s.length, CHUNK_TAG_BYTES);
      this.recordPool ??= new SlabPool(this.chunkSize + CHUNK_TAG_BYTES, this.chunkSize + CHUNK_TAG_BYTES);
      const record = this.recordPool.piece(length);
      this.sealInto(this.key, nonce, this.header, slices, record);
      out.push(record);
      this.index++;
      return;
    }
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(this.header);
    for (const slice of slices) {
      for (let at = 0; at < slice.length; at += UPDATE_BYTES) out.push(cipher.update(slice.subarray(at, at + UPDATE_BYTES)));
    }
    const tail = cipher.final();
    if (tail.length > 0) out.push(tail);
    out.push(cipher.getAuthTag());
    this.index++;
  }

  /** Appends to `out` every chunk that is now complete. */
  write(data: Buffer, out: Buffer[]): void {
    this.pending.push(data);
    // Strictly more than a chunk: the chunk that ends the input must carry the last flag.
    while (this.pending.length > this.chunkSize) this.seal(this.pending.takeSlices(this.chunkSize), false, out);
  }

  /** Appends the last chunk (and the header, for empty input). */
  end(out: Buffer[]): void {
    this.seal(this.pending.takeSlices(this.pending.length), true, out);
  }
}

/** The decrypting half as a plain object; it throws AzsError and releases only authenticated bytes. */
export class ChunkOpener {
  private readonly opts: ChunkCipherOptions;
  private readonly pending = new ByteQueue({ trackConsumed: true });
  private header: Buffer | undefined;
  private key: Buffer | undefined;
  private recordSize = 0;
  private index = 0;
  /** With the addon, each chunk's plaintext goes into recycled memory from here. */
  private readonly openInto: OpenInto | undefined = gcmAddon()?.open;
  private plainPool: SlabPool | undefined;

  constructor(opts: ChunkCipherOptions) {
    this.opts = opts;
    // Fails early on a bad data key rather than at the first chunk.
    fileKey(opts, Buffer.alloc(SALT_BYTES));
  }

  /**
   * The reader of the plaintext is done with `piece` (one buffer this opener wrote out), so the
   * next chunk may be decrypted into its memory. Anything else is ignored.
   */
  recycle(piece: Buffer): void {
    this.plainPool?.recycle(piece);
  }

  /** The input buffers read to their last byte since the last call: nothing here holds them any more. */
  consumedInput(): Buffer[] {
    return this.pending.takeConsumed();
  }

  private readHeader(header: Buffer): void {
    const name = this.opts.fileName;
    if (!header.subarray(0, 8).equals(CHUNK_MAGIC)) {
      throw integrityError('NotAnEncryptedBackupFile', `'${name}' is not an encrypted AzsBackup file (its header is wrong).`, this.opts);
    }
    if (header[8] !== CHUNK_FORMAT_VERSION || header[9] !== CHUNK_SUITE_AES256GCM || header.readUInt16BE(10) !== 0) {
      throw integrityError(
        'UnsupportedBackupFileFormat',
        `'${name}' uses format version ${header[8]}, suite ${header[9]}, which this version of AzsBackup does not read.`,
        this.opts,
      );
    }
    const chunkSize = header.readUInt32BE(12);
    if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
      throw integrityError('ChunkAuthenticationFailed', `'${name}' has a damaged header (chunk size ${chunkSize}).`, this.opts, 0);
    }
    this.header = header;
    this.recordSize = chunkSize + CHUNK_TAG_BYTES;
    this.key = fileKey(this.opts, header.subarray(16, 16 + SALT_BYTES));
    if (this.openInto) this.plainPool = new SlabPool(chunkSize, chunkSize);
  }

  /** Returns the plaintext only if the record authenticates as chunk `index` with the given flag. */
  private open(record: Buffer[], recordLength: number, last: boolean): Buffer[] | undefined {
    const bodyLength = recordLength - CHUNK_TAG_BYTES;
    const { body, tag } = splitRecord(record, bodyLength);
    const nonce = nonceFor(this.index, last);
    if (this.openInto) {
      const pool = this.plainPool!;
      if (this.openInto(this.key!, nonce, this.header!, body, tag, pool.space(bodyLength)) !== bodyLength) return undefined;
      return [pool.take(bodyLength)];
    }
    const decipher = createDecipheriv('aes-256-gcm', this.key!, nonce, { authTagLength: CHUNK_TAG_BYTES });
    decipher.setAAD(this.header!);
    const out: Buffer[] = [];
    for (const slice of body) {
      for (let at = 0; at < slice.length; at += UPDATE_BYTES) out.push(decipher.update(slice.subarray(at, at + UPDATE_BYTES)));
    }
    decipher.setAuthTag(tag);
    try {
      decipher.final();
    } catch {
      return undefined;
    }
    return out;
  }

  private release(plain: Buffer[], out: Buffer[]): void {
    for (const p of plain) if (p.length > 0) out.push(p);
    this.index++;
  }

  /** Appends to `out` the plaintext of every chunk that is now complete and authentic. */
  write(data: Buffer, out: Buffer[]): void {
    this.pending.push(data);
    if (!this.header) {
      if (this.pending.length < CHUNK_HEADER_BYTES) return;
      // A copy: it is every chunk's AAD, and the buffer it came in may be handed back and reused.
      this.readHeader(Buffer.from(this.pending.take(CHUNK_HEADER_BYTES)));
    }
    while (this.pending.length > this.recordSize) {
      const plain = this.open(this.pending.takeSlices(this.recordSize), this.recordSize, false);
      if (!plain) {
        throw integrityError(
          'ChunkAuthenticationFailed',
          `Chunk ${this.index} of '${this.opts.fileName}' (backup ${this.opts.backupName}, role ${this.opts.roleName}) failed authentication: ` +
            'it was changed, moved, or comes from another file, role or backup.',
          this.opts,
          this.index,
        );
      }
      this.release(plain, out);
    }
  }

  /** Appends the last chunk's plaintext, or throws if the file does not end with an authentic last chunk. */
  end(out: Buffer[]): void {
    const name = this.opts.fileName;
    if (!this.header) {
      throw integrityError(
        'TruncatedBackupFile',
        `'${name}' ends inside its header (${this.pending.length} bytes): it is truncated.`,
        this.opts,
      );
    }
    const length = this.pending.length;
    if (length < CHUNK_TAG_BYTES) {
      throw integrityError(
        'TruncatedBackupFile',
        `'${name}' ends ${length === 0 ? 'before' : 'inside'} chunk ${this.index}: it is truncated.`,
        this.opts,
        this.index,
      );
    }
    const record = this.pending.takeSlices(length);
    const plain = this.open(record, length, true);
    if (plain) return this.release(plain, out);
    // A full record that opens as a middle chunk means the chunks after it were cut off.
    if (length === this.recordSize && this.open(record, length, false)) {
      throw integrityError(
        'TruncatedBackupFile',
        `'${name}' ends after chunk ${this.index}, which is not its last chunk: it is truncated.`,
        this.opts,
        this.index,
      );
    }
    throw integrityError(
      'ChunkAuthenticationFailed',
      `The last chunk (${this.index}) of '${name}' (backup ${this.opts.backupName}, role ${this.opts.roleName}) failed authentication: ` +
        'it was changed, truncated, or comes from another file, role or backup.',
      this.opts,
      this.index,
    );
  }
}

/** What EncryptStream and DecryptStream drive: bytes in, whole records (or plaintext) out. */
interface ChunkProcessor {
  write(data: Buffer, out: Buffer[]): void;
  end(out: Buffer[]): void;
}

/** A Transform over a ChunkProcessor; its errors fail the stream before anything of theirs is pushed. */
class ChunkTransform extends Transform {
  constructor(
    private readonly processor: ChunkProcessor,
    writableHighWaterMark: number,
    readableHighWaterMark: number,
  ) {
    super({ writableHighWaterMark, readableHighWaterMark });
  }

  private pushAll(fill: (out: Buffer[]) => void, done: TransformCallback): void {
    const out: Buffer[] = [];
    try {
      fill(out);
    } catch (err) {
      return done(err as Error);
    }
    for (const piece of out) this.push(piece);
    done();
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.pushAll((out) => this.processor.write(data, out), done);
  }

  override _flush(done: TransformCallback): void {
    this.pushAll((out) => this.processor.end(out), done);
  }
}

export function createEncryptStream(opts: ChunkCipherOptions): Transform {
  const sealer = new ChunkSealer(opts);
  // Room for one chunk each side keeps the cipher fed without letting memory grow.
  return new ChunkTransform(sealer, sealer.chunkBytes, sealer.chunkBytes + CHUNK_TAG_BYTES);
}

export function createDecryptStream(opts: ChunkCipherOptions): Transform {
  return new ChunkTransform(new ChunkOpener(opts), DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE);
}

/** Size of the encrypted file for a given plaintext size, e.g. to check capacity up front. */
export function encryptedSize(plaintextBytes: number, chunkSize: number = DEFAULT_CHUNK_SIZE): number {
  const chunks = Math.max(1, Math.ceil(plaintextBytes / chunkSize));
  return CHUNK_HEADER_BYTES + plaintextBytes + chunks * CHUNK_TAG_BYTES;
}
