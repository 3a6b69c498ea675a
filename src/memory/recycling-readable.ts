import type { Readable } from 'node:stream';

/**
 * A stream whose reader may hand each chunk back, once nothing holds any of it, for a later read
 * to fill instead of a fresh buffer (fresh memory is dear on a VM: README, "Where the time went").
 * Chunks it did not hand out, or gets back twice, it ignores. The local folder's reads, a
 * program's output and a backup's sealed records are such streams; whoever reads one to its end
 * (a codec, a target's write, a provider's import) hands the chunks back.
 */
export type RecyclingReadable = Readable & { recycle(chunk: Buffer): void };

export function canRecycle(stream: Readable): stream is RecyclingReadable {
  return typeof (stream as Partial<RecyclingReadable>).recycle === 'function';
}

/**
 * Makes `through`, which passes on the chunks of `source` as they are (a PassThrough it is piped
 * into), hand chunks back to `source` when `source` takes them back.
 */
export function recycleThrough(through: Readable, source: Readable): void {
  if (canRecycle(source)) Object.assign(through, { recycle: (chunk: Buffer): void => source.recycle(chunk) });
}
