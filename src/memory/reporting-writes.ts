import { finished, Writable } from 'node:stream';

/**
 * `sink` as the end of a pipeline that tells, chunk by chunk, when `sink` has taken it: a pipe
 * or socket once the kernel holds its bytes, a file once they are written. A recycling stream's
 * recycle() is called from here, so only then may the chunk's memory be written over. A failure of `sink`
 * fails this stream at once, as it would fail the pipeline if `sink` were its end.
 */
export function reportingWrites(sink: Writable, written: (chunk: Buffer) => void): Writable {
  let sinkDone: ((err?: Error | null) => void) | undefined;
  let sinkResult: { err?: Error | null } | undefined;
  let waiting: ((err?: Error | null) => void) | undefined;
  const adapter = new Writable({
    highWaterMark: 0,
    write(chunk: Buffer, _encoding, done) {
      if (sinkResult) return done(sinkResult.err ?? prematureClose());
      if (
        sink.write(chunk, (err) => {
          if (!err) written(chunk);
        })
      )
        return done();
      waiting = done;
      sink.once('drain', () => {
        const resume = waiting;
        waiting = undefined;
        resume?.();
      });
    },
    final(done) {
      if (sinkResult) return done(sinkResult.err);
      sinkDone = done;
      sink.end();
    },
    destroy(err, done) {
      if (err) sink.destroy();
      done(err);
    },
  });
  finished(sink, (err) => {
    sinkResult = { err };
    if (sinkDone) return sinkDone(err);
    // Failed (or closed) before the data ended: whoever waits on us hears it now.
    const failure = err ?? prematureClose();
    const resume = waiting;
    waiting = undefined;
    if (resume) resume(failure);
    else adapter.destroy(failure);
  });
  return adapter;
}

function prematureClose(): Error {
  return Object.assign(new Error('the destination closed before all data was written'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}
