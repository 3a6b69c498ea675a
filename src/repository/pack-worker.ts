import { parentPort, workerData } from 'node:worker_threads';
import { isAzsError } from '../errors.js';
import { PackAssembler, type PackEvent } from './pack-assembler.js';
import type { PackerReply, PackerRequest, PackerWorkerData } from './packers.js';

/**
 * A PackAssembler on a thread of its own (packers.ts): names chunks, seals the new ones into its
 * packs. Buffers come in and go out transferred, never copied on the way.
 */
const { settings, packNumbers } = workerData as PackerWorkerData;
const assembler = new PackAssembler(settings, packNumbers);

/**
 * Bytes that lie in the output memory go as they are (it is transferred whole); any other (a
 * pack's header or tail, from Node's pool of small buffers) is copied out, so no buffer shared
 * with others crosses.
 */
function portable(events: PackEvent[], output: Buffer | undefined): PackEvent[] {
  return events.map((e) => ('data' in e && e.data.buffer !== output?.buffer ? { pack: e.pack, data: new Uint8Array(e.data) } : e));
}

function run(request: PackerRequest): { reply: PackerReply; transfer: ArrayBuffer[] } {
  switch (request.op) {
    case 'identify': {
      const data = Buffer.from(request.data.buffer, request.data.byteOffset, request.data.byteLength);
      const ids = assembler.identify(request.job, data, request.lengths);
      // Copied, not transferred: the assembler keeps the ids for store().
      return { reply: { id: request.id, ids }, transfer: [] };
    }
    case 'store': {
      for (const spare of request.spare) assembler.giveBack(Buffer.from(spare.buffer, spare.byteOffset, spare.byteLength));
      const made: PackEvent[] = [];
      const { sealed, data, output } = assembler.store(request.job, request.take, made);
      const transfer = [data.buffer as ArrayBuffer, ...(output ? [output.buffer as ArrayBuffer] : [])];
      for (const e of made) if ('closed' in e) transfer.push(e.closed.entries.buffer as ArrayBuffer);
      return { reply: { id: request.id, sealed, events: portable(made, output), data, ...(output ? { output } : {}) }, transfer };
    }
    case 'close': {
      const made: PackEvent[] = [];
      assembler.close(made);
      const transfer = made.flatMap((e) => ('closed' in e ? [e.closed.entries.buffer as ArrayBuffer] : []));
      return { reply: { id: request.id, events: portable(made, undefined) }, transfer };
    }
    case 'abort':
      assembler.abort();
      return { reply: { id: request.id }, transfer: [] };
  }
}

parentPort!.on('message', (request: PackerRequest) => {
  let answer: { reply: PackerReply; transfer: ArrayBuffer[] };
  try {
    answer = run(request);
  } catch (e) {
    const error = isAzsError(e)
      ? { message: e.message, errorId: e.errorId, category: e.category, exitCode: e.exitCode, recommendedAction: e.recommendedAction }
      : { message: (e as Error).message };
    answer = { reply: { id: request.id, error }, transfer: [] };
  }
  parentPort!.postMessage(answer.reply, answer.transfer);
});
