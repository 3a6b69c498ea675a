import { createCipheriv, createDecipheriv, randomFillSync, timingSafeEqual } from 'node:crypto';
import { gcmAddon } from '../native/aes-gcm.js';
import { sharedCopier } from '../native/shared-copy.js';
import binding from 'zstd-napi/binding.js';
import { decompressionError } from '../pipeline/zstd-codec.js';
import { chunkIdOf, CHUNK_ID_BYTES, type RepositoryKeys } from './keys.js';
import { chunkNotAuthentic } from './errors.js';
import type { AzsError } from '../errors.js';

/**
 * One chunk as stored in a pack (a "blob"):
 *
 *   blob    = nonce (12 random bytes) || AES-256-GCM(K_pack, nonce, aad, payload) || tag (16)
 *   aad     = "AzsBackup blob v1" || 0x00 || chunkId (32)
 *   payload = codec (1 byte: 0x00 stored as is, 0x01 one zstd frame) || body
 *
 * The chunk id in the AAD binds the blob to the one chunk it claims to be: a blob moved to another
 * offset, or put in the place of another chunk, fails authentication. K_pack is the pack's own key
 * (keys.ts), so nonces are random under a key that seals at most 16,384 blobs.
 * A reader that decrypts also recomputes the chunk id from the plaintext (a second, independent
 * check that costs one HMAC). The codec is inside the ciphertext: the share learns nothing about
 * how well a chunk compresses beyond the blob's length, and the pack's table of contents, which
 * holds the lengths, is encrypted as well.
 */
export const BLOB_NONCE_BYTES = 12;
export const BLOB_TAG_BYTES = 16;
export const BLOB_OVERHEAD = BLOB_NONCE_BYTES + 1 + BLOB_TAG_BYTES;
const AAD_LABEL = Buffer.from('AzsBackup blob v1\0', 'ascii');
const CODEC_STORED = 0x00;
const CODEC_ZSTD = 0x01;
/** No chunk is larger than the chunker's largest bound; a frame claiming more is refused unread. */
export const MAX_CHUNK_BYTES = 64 * 1024 * 1024;

function aadFor(chunkId: Buffer): Buffer {
  return Buffer.concat([AAD_LABEL, chunkId]);
}

/** A chunk compressed (or kept as is where zstd does not make it smaller), ready to be sealed. */
export interface PackedChunk {
  codec: number;
  body: Buffer;
  /** The sealed blob's length: BLOB_OVERHEAD + body. */
  sealedLength: number;
}

/**
 * Compresses (zstd, one reusable context) and seals chunks. The two steps are apart so a pack
 * writer knows a blob's length, and so the pack it goes into, before choosing the key to seal it.
 */
export class BlobSealer {
  private readonly cctx = new binding.CCtx();
  private readonly copy = sharedCopier();

  constructor(level = 1) {
    this.cctx.setParameter(binding.CParameter.compressionLevel, level);
    // Level 1 gives a chunk over 256 KiB a hash table of 2^13 entries (32 KiB, all of L1d on the
    // build VM's EPYC); 2^12 stays in L1 beside the chunk's own lines: 15-20% faster on the bench's
    // JSON for 0.8% more bytes (docs/PERFORMANCE.md). Frames decode the same either way.
    if (level === 1) this.cctx.setParameter(binding.CParameter.hashLog, 12);
  }

  /**
   * The chunk compressed (or copied, where zstd does not make it smaller) into `out`, behind the
   * room its nonce and codec take; `out` needs blobRoom(plaintext.length) bytes. The blob's length
   * once sealedInPlace(). Packs are filled this way: the blob lands where it is written from.
   */
  packInto(plaintext: Buffer, out: Buffer): number {
    const body = out.subarray(BLOB_NONCE_BYTES + 1, out.length - BLOB_TAG_BYTES);
    const packed = plaintext.length > 0 ? this.cctx.compress2(body, plaintext) : 0;
    const compressed = packed < plaintext.length;
    if (!compressed) this.copy(body, 0, plaintext);
    out[BLOB_NONCE_BYTES] = compressed ? CODEC_ZSTD : CODEC_STORED;
    return BLOB_OVERHEAD + (compressed ? packed : plaintext.length);
  }

  /** Seals the blob packInto() left in out[0..length) where it lies. */
  sealInPlace(blobKey: Buffer, chunkId: Buffer, out: Buffer, length: number): void {
    const nonce = randomFillSync(out, 0, BLOB_NONCE_BYTES).subarray(0, BLOB_NONCE_BYTES);
    const payload = out.subarray(BLOB_NONCE_BYTES, length - BLOB_TAG_BYTES);
    const addon = gcmAddon();
    if (addon) {
      // The addon writes where it reads (the same memory): AES-GCM encrypts in place.
      addon.seal(blobKey, nonce, aadFor(chunkId), [payload], out.subarray(BLOB_NONCE_BYTES, length));
      return;
    }
    const cipher = createCipheriv('aes-256-gcm', blobKey, nonce);
    cipher.setAAD(aadFor(chunkId));
    const sealed = Buffer.concat([cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
    sealed.copy(out, BLOB_NONCE_BYTES);
  }

  /** The chunk compressed as packInto() does, in memory of its own (tests and tools; packs use packInto). */
  pack(plaintext: Buffer): PackedChunk {
    const out = Buffer.allocUnsafe(blobRoom(plaintext.length));
    const sealedLength = this.packInto(plaintext, out);
    return { codec: out[BLOB_NONCE_BYTES]!, body: out.subarray(BLOB_NONCE_BYTES + 1, sealedLength - BLOB_TAG_BYTES), sealedLength };
  }

  /** A blob of `packed` (any codec and body: tests forge blobs with it), sealed as sealInPlace() seals. */
  seal(blobKey: Buffer, chunkId: Buffer, packed: PackedChunk): Buffer[] {
    const blob = Buffer.alloc(BLOB_OVERHEAD + packed.body.length);
    blob[BLOB_NONCE_BYTES] = packed.codec;
    packed.body.copy(blob, BLOB_NONCE_BYTES + 1);
    this.sealInPlace(blobKey, chunkId, blob, blob.length);
    return [blob];
  }
}

/** The room packInto() needs for a chunk of `length` bytes. */
export function blobRoom(length: number): number {
  return BLOB_OVERHEAD + Math.max(length, binding.compressBound(length));
}

/** Where a blob lies and the key it is sealed under: the pack's blob key (keys.ts packKeyOf). */
export interface BlobPlace {
  pack: string;
  blobKey: Buffer;
}

/**
 * Opens one blob as the chunk `chunkId`: authenticates it under its pack's key, decompresses it
 * and checks that the plaintext's keyed hash is that id (the check that proves it ours: anyone
 * with the public key can seal a blob). Throws ChunkNotAuthentic otherwise.
 */
export function openBlob(
  keys: Pick<RepositoryKeys, 'chunkId'>,
  place: BlobPlace,
  chunkId: Buffer,
  blob: Buffer,
  expectedLength?: number,
): Buffer {
  const fail = failureFor(place, chunkId);
  const { codec, body } = payloadOf(place, chunkId, blob, fail);
  let plaintext: Buffer;
  if (codec === CODEC_STORED) plaintext = body;
  else if (codec === CODEC_ZSTD) plaintext = decompress(body, expectedLength, fail);
  else throw fail(`unknown codec ${String(codec)}`);
  if (expectedLength !== undefined && plaintext.length !== expectedLength)
    throw fail(`it holds ${plaintext.length} bytes, not ${expectedLength}`);
  if (!timingSafeEqual(chunkIdOf(keys, plaintext), chunkId)) throw fail('its contents do not hash to its id');
  return plaintext;
}

/**
 * openBlob into memory the caller gives: the chunk, expected to be exactly `out.length` bytes, is
 * written into `out` (a restore's batch of chunks, shared with a worker thread), with the same
 * checks and the same errors. When it throws, `out` holds bytes that did not pass them: the
 * caller must not pass any of it on. `blob` is used up: with the addon it is decrypted where it
 * lies (no memory is allocated per chunk), so its bytes are not the blob's any more.
 */
export function openBlobInto(keys: Pick<RepositoryKeys, 'chunkId'>, place: BlobPlace, chunkId: Buffer, blob: Buffer, out: Buffer): void {
  const fail = failureFor(place, chunkId);
  const { codec, body } = payloadOf(place, chunkId, blob, fail, true);
  if (codec === CODEC_STORED) {
    if (body.length !== out.length) throw fail(`it holds ${body.length} bytes, not ${out.length}`);
    sharedCopier()(out, 0, body);
  } else if (codec === CODEC_ZSTD) decompressInto(body, out, fail);
  else throw fail(`unknown codec ${String(codec)}`);
  if (!timingSafeEqual(chunkIdOf(keys, out), chunkId)) throw fail('its contents do not hash to its id');
}

type Failure = (detail: string, cause?: unknown) => AzsError;

function failureFor({ pack }: BlobPlace, chunkId: Buffer): Failure {
  return (detail, cause) => chunkNotAuthentic(chunkId.toString('hex'), pack, detail, cause);
}

/**
 * The blob authenticated under its pack's key as `chunkId` and decrypted: its codec and body.
 * `inPlace`: the caller gives the blob up, and with the addon it is decrypted where it lies.
 */
function payloadOf(
  place: BlobPlace,
  chunkId: Buffer,
  blob: Buffer,
  fail: Failure,
  inPlace = false,
): { codec: number | undefined; body: Buffer } {
  if (chunkId.length !== CHUNK_ID_BYTES) throw fail('the chunk id is not 32 bytes');
  if (blob.length < BLOB_OVERHEAD) throw fail('the blob is shorter than its fixed overhead');
  const addon = inPlace ? gcmAddon() : undefined;
  if (addon) {
    const sealed = blob.subarray(BLOB_NONCE_BYTES, blob.length - BLOB_TAG_BYTES);
    const nonce = blob.subarray(0, BLOB_NONCE_BYTES);
    const tag = blob.subarray(blob.length - BLOB_TAG_BYTES);
    // Nothing of the plaintext is looked at unless the tag checked (-1 otherwise).
    if (addon.open(place.blobKey, nonce, aadFor(chunkId), [sealed], tag, sealed) !== sealed.length)
      throw fail('the blob does not authenticate under this chunk id');
    return { codec: sealed[0], body: sealed.subarray(1) };
  }
  let payload: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', place.blobKey, blob.subarray(0, BLOB_NONCE_BYTES));
    decipher.setAAD(aadFor(chunkId));
    decipher.setAuthTag(blob.subarray(blob.length - BLOB_TAG_BYTES));
    const head = decipher.update(blob.subarray(BLOB_NONCE_BYTES, blob.length - BLOB_TAG_BYTES));
    // GCM gives everything from update(); final() only checks the tag (nothing is used before it has).
    const tail = decipher.final();
    payload = tail.length ? Buffer.concat([head, tail]) : head;
  } catch (cause) {
    throw fail('the blob does not authenticate under this chunk id', cause);
  }
  return { codec: payload[0], body: payload.subarray(1) };
}

/**
 * A body that authenticated but does not decompress was bad before it was sealed: DecompressionFailed.
 * Anyone holding the repository's public key can seal a blob that authenticates under a pack key
 * of their own (only the keyed hash after this refuses it), so a frame declaring another size than
 * the catalog expects is refused before anything is allocated for it.
 */
function decompress(body: Buffer, expectedLength: number | undefined, fail: Failure): Buffer {
  const size = declaredSize(body, expectedLength, fail);
  const out = Buffer.allocUnsafe(size);
  expand(body, out);
  return out;
}

/** The size `body`'s frame declares, refused unless it is `expectedLength` (where given) and usable. */
function declaredSize(body: Buffer, expectedLength: number | undefined, fail: Failure): number {
  let size: number | null;
  try {
    size = binding.getFrameContentSize(body);
  } catch (cause) {
    throw decompressionError('the chunk is not a zstd frame', cause);
  }
  if (size !== null && expectedLength !== undefined && size !== expectedLength)
    throw fail(`its frame declares ${size} bytes, not ${expectedLength}`);
  if (size === null || size > MAX_CHUNK_BYTES) throw decompressionError('the chunk does not declare a usable size');
  return size;
}

/** `body`'s frame expanded into `out`, which it must fill exactly. */
function decompressInto(body: Buffer, out: Buffer, fail: Failure): void {
  declaredSize(body, out.length, fail);
  expand(body, out);
}

/** Expands a frame that declared exactly `out.length` bytes into `out`. */
function expand(body: Buffer, out: Buffer): void {
  let n: number;
  try {
    n = binding.decompress(out, body);
  } catch (cause) {
    throw decompressionError('the chunk does not decompress', cause);
  }
  if (n !== out.length) throw decompressionError('the chunk is shorter than its frame declares');
}
