import { parentPort } from 'node:worker_threads';
import { isAzsError } from '../errors.js';
import { openBlob } from './blob.js';
import type { WorkerReply, WorkerTask } from './chunk-workers.js';

/**
 * The CPU-heavy half of reading chunks, on a thread of its own (chunk-workers.ts): opening a
 * stored one (decrypt, decompress, check its keyed hash).
 * Buffers come and go transferred, never copied on the way.
 */

function owned(piece: Buffer): Uint8Array {
  // A buffer that is the whole of its ArrayBuffer can be handed over as it is; a view is copied.
  return piece.byteOffset === 0 && piece.byteLength === piece.buffer.byteLength ? piece : new Uint8Array(piece);
}

function run(task: WorkerTask): WorkerReply {
  const plaintext = openBlob(
    { chunkId: Buffer.from(task.chunkIdKey) },
    { pack: task.pack, blobKey: Buffer.from(task.blobKey) },
    Buffer.from(task.chunkId),
    Buffer.from(task.blob.buffer, task.blob.byteOffset, task.blob.byteLength),
    task.expectedLength,
  );
  return { id: task.id, body: owned(plaintext) };
}

parentPort!.on('message', (task: WorkerTask) => {
  let reply: WorkerReply;
  try {
    reply = run(task);
  } catch (e) {
    const error = isAzsError(e)
      ? {
          message: e.message,
          errorId: e.errorId,
          category: e.category,
          exitCode: e.exitCode,
          targetObject: e.targetObject,
          recommendedAction: e.recommendedAction,
        }
      : { message: (e as Error).message };
    reply = { id: task.id, error };
  }
  parentPort!.postMessage(reply, reply.body ? [reply.body.buffer as ArrayBuffer] : []);
});
