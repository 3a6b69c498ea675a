import { parentPort, workerData } from 'node:worker_threads';
import { isAzsError } from '../errors.js';
import { PackAssembler, type PackEvent } from './pack-assembler.js';
import type { PackerReply, PackerRequest, PackerWorkerData, WireEvent } from './packers.js';

/**
 * A PackAssembler on a thread of its own (packers.ts): names chunks, seals the new ones into its
 * packs. Jobs and blobs lie in memory shared with the main thread; messages carry where.
 */
const { settings, packNumbers, memory } = workerData as PackerWorkerData;
const assembler = new PackAssembler(settings, packNumbers);
const inputs = memory.inputs.map((b) => Buffer.from(b));
const outputs = memory.outputs.map((b) => Buffer.from(b));

/**
 * Bytes in an output slot go as where they lie; bytes in memory of the assembler's own (a blob
 * too large for the slot) go with that memory transferred; any other bytes (a pack's header or
 * tail, from Node's pool of small buffers) are copied, so no memory shared with others crosses.
 */
function wire(events: PackEvent[], slot: number, own: Buffer | undefined): { events: WireEvent[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = own ? [own.buffer as ArrayBuffer] : [];
  const out = events.map((e): WireEvent => {
    if ('closed' in e) {
      transfer.push(e.closed.entries.buffer as ArrayBuffer);
      return e;
    }
    if (slot >= 0 && e.data.buffer === outputs[slot]!.buffer)
      return { pack: e.pack, output: slot, offset: e.data.byteOffset, length: e.data.byteLength };
    if (own && e.data.buffer === own.buffer) return e;
    return { pack: e.pack, data: new Uint8Array(e.data) };
  });
  return { events: out, transfer };
}

function run(request: PackerRequest): { reply: PackerReply; transfer: ArrayBuffer[] } | undefined {
  switch (request.op) {
    case 'identify': {
      const ids = assembler.identify(request.job, inputs[request.input]!, request.lengths);
      // Copied, not transferred: the assembler keeps the ids for store().
      return { reply: { id: request.id, ids }, transfer: [] };
    }
    case 'store': {
      const made: PackEvent[] = [];
      const slot = outputs[request.output];
      const { sealed, output } = assembler.store(request.job, request.take, slot, made);
      const { events, transfer } = wire(made, request.output, output === slot ? undefined : output);
      return { reply: { id: request.id, sealed, events }, transfer };
    }
    case 'close': {
      const made: PackEvent[] = [];
      assembler.close(made);
      const { events, transfer } = wire(made, -1, undefined);
      return { reply: { id: request.id, events }, transfer };
    }
    case 'drop':
      assembler.drop(request.job);
      return undefined;
    case 'abort':
      assembler.abort();
      return { reply: { id: request.id }, transfer: [] };
  }
}

parentPort!.postMessage({ id: 0, ready: true } satisfies PackerReply);

parentPort!.on('message', (request: PackerRequest) => {
  let answer: { reply: PackerReply; transfer: ArrayBuffer[] } | undefined;
  try {
    answer = run(request);
    if (!answer) return;
  } catch (e) {
    const error = isAzsError(e)
      ? { message: e.message, errorId: e.errorId, category: e.category, exitCode: e.exitCode, recommendedAction: e.recommendedAction }
      : { message: (e as Error).message };
    answer = { reply: { id: request.id, error }, transfer: [] };
  }
  parentPort!.postMessage(answer.reply, answer.transfer);
});
