import type { Readable } from 'node:stream';

/**
 * Buffer recycling, an optional capability of a stream, known only to the pipeline and to the
 * targets and providers that choose to take part. The Target and Provider contracts
 * (src/targets/target.ts, src/providers/provider.ts) speak of plain Readables, and a new target or
 * provider that ignores everything here is correct: its chunks are simply left to the garbage
 * collector. Recycling only makes the same few buffers go round while they are still hot, where
 * fresh memory costs a page fault every 4 KiB on this kind of VM (docs/PERFORMANCE.md).
 *
 * The capability is a `recycle(chunk)` method on the stream (a RecyclingReadable):
 * - Who offers it: a stream whose producer writes into pooled memory (src/memory/slab-pool.ts): a
 *   program's output (pooled-reader.ts), the codec streams of src/pipeline, the local folder's and
 *   the blob container's reads (src/targets/read-ahead.ts), and pass-throughs of those
 *   (recycleThrough).
 * - Who uses it: whoever reads such a stream to its end may hand each chunk back once nothing holds
 *   any of its bytes any more (written to a file, taken by a pipe or socket, hashed, copied), never
 *   before: the producer's next output lands in that memory. A target's write() and a provider's
 *   import() discover it on the stream they are given with recyclerOf(); the engine does the same
 *   with what a target's read() or a provider's export() returns.
 * Chunks a stream did not hand out, or gets back twice, it ignores.
 */
export type RecyclingReadable = Readable & { recycle(chunk: Buffer): void };

export function canRecycle(stream: Readable): stream is RecyclingReadable {
  return typeof (stream as Partial<RecyclingReadable>).recycle === 'function';
}

/** Where the reader of `stream` hands a chunk back once done with it, if `stream` takes chunks back. */
export function recyclerOf(stream: Readable): ((chunk: Buffer) => void) | undefined {
  return canRecycle(stream) ? (chunk: Buffer): void => stream.recycle(chunk) : undefined;
}

/**
 * Makes `through`, which passes on the chunks of `source` as they are (a PassThrough it is piped
 * into), hand chunks back to `source` when `source` takes them back.
 */
export function recycleThrough(through: Readable, source: Readable): void {
  if (canRecycle(source)) Object.assign(through, { recycle: (chunk: Buffer): void => source.recycle(chunk) });
}
