import { openBlobInto } from './blob.js';
import { CHUNK_ID_BYTES } from './keys.js';

/**
 * A batch of blobs to open in one go (chunk-reader.ts makes them, chunk-workers.ts runs them on a
 * worker thread or here): the blobs lie back to back in `input`, and each chunk is written to its
 * place in `output`, in order. Both are shared memory, so a batch crosses to a worker thread and
 * back as a few offsets, not as copies of its bytes, and its chunks come back as one piece.
 */
export interface BlobBatch {
  id: number;
  /** The repository's chunk-id key (keys.ts), which checks each chunk's keyed hash. */
  chunkIdKey: Uint8Array;
  /** The packs the batch's blobs lie in, and each one's blob key (BLOB_KEY_BYTES apiece, in the same order). */
  packs: string[];
  blobKeys: Uint8Array;
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
  /** Per blob, LAYOUT_FIELDS numbers: its pack's index in `packs`, its offset and length in `input`, its chunk's offset and length in `output`. */
  layout: Uint32Array;
  /** Per blob, its chunk id (CHUNK_ID_BYTES apiece). */
  chunkIds: Uint8Array;
}

export const LAYOUT_FIELDS = 5;
export const BLOB_KEY_BYTES = 32;

export interface BatchResult {
  /** How many chunks, from the first, opened and passed every check. */
  opened: number;
  /** Why chunk number `opened` did not (openBlob's error); absent when all did. */
  failure?: unknown;
}

/**
 * Opens a batch's blobs in order, each into its place in the output, with every check openBlob
 * makes; stops at the first that fails and says how many came before it. Nothing past that count
 * is to be passed on.
 */
export function openBatch(batch: BlobBatch): BatchResult {
  const keys = { chunkId: Buffer.from(batch.chunkIdKey) };
  const places = batch.packs.map((pack, i) => ({
    pack,
    blobKey: Buffer.from(batch.blobKeys.buffer, batch.blobKeys.byteOffset + i * BLOB_KEY_BYTES, BLOB_KEY_BYTES),
  }));
  const count = batch.layout.length / LAYOUT_FIELDS;
  for (let i = 0; i < count; i++) {
    const [packIndex, inAt, inLength, outAt, outLength] = batch.layout.subarray(i * LAYOUT_FIELDS, (i + 1) * LAYOUT_FIELDS);
    const chunkId = Buffer.from(batch.chunkIds.buffer, batch.chunkIds.byteOffset + i * CHUNK_ID_BYTES, CHUNK_ID_BYTES);
    try {
      openBlobInto(
        keys,
        places[packIndex!]!,
        chunkId,
        Buffer.from(batch.input, inAt!, inLength!),
        Buffer.from(batch.output, outAt!, outLength!),
      );
    } catch (e) {
      return { opened: i, failure: e };
    }
  }
  return { opened: count };
}
