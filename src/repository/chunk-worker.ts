import { parentPort } from 'node:worker_threads';
import { isAzsError } from '../errors.js';
import { openBatch, type BlobBatch } from './blob-batch.js';
import type { WorkerReply } from './chunk-workers.js';

/**
 * The CPU-heavy half of reading chunks, on a thread of its own (chunk-workers.ts): opening stored
 * ones (decrypt, decompress, check the keyed hash), a batch at a time. The blobs and the chunks
 * lie in memory shared with the main thread; only the count of chunks opened goes back.
 */

function replyTo(batch: BlobBatch): WorkerReply {
  const { opened, failure } = openBatch(batch);
  if (failure === undefined) return { id: batch.id, opened };
  const error = isAzsError(failure)
    ? {
        message: failure.message,
        errorId: failure.errorId,
        category: failure.category,
        exitCode: failure.exitCode,
        targetObject: failure.targetObject,
        recommendedAction: failure.recommendedAction,
      }
    : { message: (failure as Error).message };
  return { id: batch.id, opened, error };
}

parentPort!.on('message', (batch: BlobBatch) => {
  let reply: WorkerReply;
  try {
    reply = replyTo(batch);
  } catch (e) {
    reply = { id: batch.id, opened: 0, error: { message: (e as Error).message } };
  }
  parentPort!.postMessage(reply);
});
