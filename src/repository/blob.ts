import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import binding from 'zstd-napi/binding.js';
import { decompressionError } from '../pipeline/zstd-codec.js';
import { chunkIdOf, CHUNK_ID_BYTES, type RepositoryKeys } from './keys.js';
import { chunkNotAuthentic } from './errors.js';

/**
 * One chunk as stored in a pack (a "blob"):
 *
 *   blob    = nonce (12 random bytes) || AES-256-GCM(K_blob, nonce, aad, payload) || tag (16)
 *   aad     = "AzsBackup blob v1" || 0x00 || chunkId (32)
 *   payload = codec (1 byte: 0x00 stored as is, 0x01 one zstd frame) || body
 *
 * The chunk id in the AAD binds the blob to the one chunk it claims to be: a blob moved to another
 * offset or pack, or put in the place of another chunk, fails authentication. Nonces are random
 * under one key per repository: 2^32 blobs (4 PiB of 1 MiB chunks) keep a collision below 2^-32.
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

/** Compresses (zstd, one reusable context) and seals chunks. */
export class BlobSealer {
  private readonly cctx = new binding.CCtx();
  private scratch = Buffer.alloc(0);

  constructor(
    private readonly keys: RepositoryKeys,
    private readonly level = 1,
  ) {}

  /** The sealed blob's pieces (write them in order); their lengths sum to the blob's length. */
  seal(chunkId: Buffer, plaintext: Buffer): Buffer[] {
    const bound = binding.compressBound(plaintext.length);
    if (this.scratch.length < bound) this.scratch = Buffer.allocUnsafe(bound);
    const packed = plaintext.length > 0 ? this.cctx.compress(this.scratch, plaintext, this.level) : plaintext.length;
    const compressed = packed < plaintext.length;
    const nonce = randomBytes(BLOB_NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.blob, nonce);
    cipher.setAAD(aadFor(chunkId));
    const head = cipher.update(Buffer.of(compressed ? CODEC_ZSTD : CODEC_STORED));
    const body = cipher.update(compressed ? this.scratch.subarray(0, packed) : plaintext);
    const tail = cipher.final();
    return [nonce, head, body, tail, cipher.getAuthTag()];
  }
}

/**
 * Opens one blob as the chunk `chunkId`: authenticates it, decompresses it and checks that the
 * plaintext's keyed hash is that id. Throws ChunkNotAuthentic otherwise.
 */
export function openBlob(keys: RepositoryKeys, chunkId: Buffer, blob: Buffer, pack: string, expectedLength?: number): Buffer {
  const idHex = chunkId.toString('hex');
  const fail = (detail: string, cause?: unknown) => chunkNotAuthentic(idHex, pack, detail, cause);
  if (chunkId.length !== CHUNK_ID_BYTES) throw fail('the chunk id is not 32 bytes');
  if (blob.length < BLOB_OVERHEAD) throw fail('the blob is shorter than its fixed overhead');
  let payload: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keys.blob, blob.subarray(0, BLOB_NONCE_BYTES));
    decipher.setAAD(aadFor(chunkId));
    decipher.setAuthTag(blob.subarray(blob.length - BLOB_TAG_BYTES));
    payload = Buffer.concat([decipher.update(blob.subarray(BLOB_NONCE_BYTES, blob.length - BLOB_TAG_BYTES)), decipher.final()]);
  } catch (cause) {
    throw fail('the blob does not authenticate under this chunk id', cause);
  }
  const codec = payload[0];
  const body = payload.subarray(1);
  let plaintext: Buffer;
  if (codec === CODEC_STORED) plaintext = body;
  else if (codec === CODEC_ZSTD) plaintext = decompress(body);
  else throw fail(`unknown codec ${String(codec)}`);
  if (expectedLength !== undefined && plaintext.length !== expectedLength)
    throw fail(`it holds ${plaintext.length} bytes, not ${expectedLength}`);
  if (!timingSafeEqual(chunkIdOf(keys, plaintext), chunkId)) throw fail('its contents do not hash to its id');
  return plaintext;
}

/** A body that authenticated but does not decompress was bad before it was sealed: DecompressionFailed. */
function decompress(body: Buffer): Buffer {
  let size: number | null;
  try {
    size = binding.getFrameContentSize(body);
  } catch (cause) {
    throw decompressionError('the chunk is not a zstd frame', cause);
  }
  if (size === null || size > MAX_CHUNK_BYTES) throw decompressionError('the chunk does not declare a usable size');
  const out = Buffer.allocUnsafe(size);
  let n: number;
  try {
    n = binding.decompress(out, body);
  } catch (cause) {
    throw decompressionError('the chunk does not decompress', cause);
  }
  if (n !== size) throw decompressionError('the chunk is shorter than its frame declares');
  return out;
}
