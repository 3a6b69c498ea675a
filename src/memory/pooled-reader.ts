import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { Readable } from 'node:stream';
import type { RecyclingReadable } from './recycling-readable.js';
import { SlabPool } from './slab-pool.js';

const SLAB_BYTES = 1024 * 1024;
/** A read never gets less room than this (a slab with less left is retired). */
const MIN_READ_BYTES = 64 * 1024;

/**
 * The bytes arriving on a pipe or socket descriptor, read into slabs from a SlabPool instead of
 * the 64 KiB buffer Node allocates for every read (Socket's `onread` option). A backup reads all of
 * tar's output this way, and once zstd has copied a chunk it comes back through recycle(): the
 * same few slabs are read into again while they are still hot, where fresh buffers cost a page
 * fault every 4 KiB on this kind of VM (README, "Where the time went").
 */
export function readPooled(fd: number): RecyclingReadable {
  const pool = new SlabPool(SLAB_BYTES, MIN_READ_BYTES);
  let socket: Socket | undefined;
  const out = new Readable({
    highWaterMark: SLAB_BYTES,
    read() {
      socket?.resume();
    },
    destroy(err, done) {
      socket?.destroy();
      done(err);
    },
  });
  // Node reads `onread` in the constructor too, though its types declare it for connect() only.
  const options: SocketConstructorOpts & { onread: OnReadOpts } = {
    fd,
    readable: true,
    writable: false,
    onread: {
      // Asked for once before the first read and after every read: the free room of the slab.
      buffer: () => pool.space(),
      // Returning false pauses reading until out's reader wants more (read() above).
      callback: (bytes: number) => out.push(pool.take(bytes)),
    },
  };
  socket = new Socket(options);
  socket.once('end', () => out.push(null));
  socket.once('error', (err) => out.destroy(err));
  return Object.assign(out, { recycle: (chunk: Buffer): void => pool.recycle(chunk) });
}
