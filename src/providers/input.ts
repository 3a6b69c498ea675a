import type { Readable } from 'node:stream';

/**
 * The error of a role data stream that failed before the provider began to read it. The engine
 * starts decrypting as soon as the stream exists, so a damaged first chunk can fail it while the
 * provider is still preparing its staging folder; an 'error' listener added after that never fires,
 * and a program fed from the stream would wait for input forever (or see a clean end of input).
 */
export function earlyFailure(data: Readable): Error | undefined {
  if (data.errored) return data.errored;
  if (data.destroyed && !data.readableEnded) return new Error('the role data stream was closed before it ended');
  return undefined;
}
