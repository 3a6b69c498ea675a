import { Transform } from 'node:stream';

/** A pass-through that reports the running byte count, at most every 256 KiB, and at the end. */
export function countBytes(onCount: (bytes: number) => void): Transform {
  let bytes = 0;
  let reported = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes - reported >= 262_144) {
        reported = bytes;
        onCount(bytes);
      }
      done(null, chunk);
    },
    flush(done) {
      onCount(bytes);
      done();
    },
  });
}
