/**
 * Output memory carved from slabs. A slab whose pieces have all been given back (recycle()) is
 * carved again instead of a fresh one being allocated: on the restore path the pieces are handed
 * back once tar has taken them, so a handful of slabs stay hot in the cache and the TLB. Fresh
 * memory is dear on a VM: writing 512 MiB to a socket took 5x longer from fresh 1 MiB buffers
 * than from one reused buffer. A piece never given back is simply left to the garbage collector.
 */
export class SlabPool {
  private slab: Buffer = Buffer.allocUnsafe(0);
  private at = 0;
  private current: SlabRecord = { out: 0, retired: true };
  private readonly spare: Buffer[];
  private readonly maxSpare: number;
  /**
   * Keyed by the slab's memory and by the piece, and holding no buffer, so that bookkeeping never
   * keeps memory alive that nobody gives back.
   */
  private readonly records = new WeakMap<ArrayBufferLike, SlabRecord>();
  private readonly out = new WeakSet<Buffer>();

  /**
   * Slabs of `slabBytes`; space() gives at least `minBytes` unless asked for more. Pools given the
   * same `spares` (all of one slab size) keep their spare slabs together: what one short-lived
   * pool gave back, the next one carves, rather than fresh memory for each (a restore reads one
   * pack after another, each through a pool of its own).
   */
  constructor(
    private readonly slabBytes: number,
    private readonly minBytes: number,
    spares?: Buffer[],
  ) {
    this.spare = spares ?? [];
    this.maxSpare = Math.max(2, Math.floor(MAX_SPARE_BYTES / slabBytes));
  }

  /** Free space of at least `min` bytes (at most slabBytes); another slab when the current one has less. */
  space(min: number = this.minBytes): Buffer {
    if (this.slab.length - this.at < min) {
      this.current.retired = true;
      if (this.current.out === 0) this.keep(this.slab.buffer);
      this.slab = this.spare.pop() ?? Buffer.allocUnsafeSlow(this.slabBytes);
      this.at = 0;
      this.current = { out: 0, retired: false };
      this.records.set(this.slab.buffer, this.current);
    }
    return this.slab.subarray(this.at);
  }

  /** Hands out the first n bytes of the last space(); they are not written again until given back. */
  take(n: number): Buffer {
    const piece = this.slab.subarray(this.at, this.at + n);
    this.at += n;
    if (n > 0) {
      this.out.add(piece);
      this.current.out++;
    }
    return piece;
  }

  /** Exactly n bytes (at most slabBytes) handed out at once: space(n), then take(n). */
  piece(n: number): Buffer {
    this.space(n);
    return this.take(n);
  }

  /** The holder of `piece` is done with it. Anything else (an unknown buffer, a second call) is ignored. */
  recycle(piece: Buffer): void {
    if (!this.out.delete(piece)) return;
    const record = this.records.get(piece.buffer);
    if (record && --record.out === 0 && record.retired) this.keep(piece.buffer);
  }

  /** Only memory this pool allocated is kept (never, say, the shared pool behind a small Buffer). */
  private keep(memory: ArrayBufferLike): void {
    if (this.records.has(memory) && memory.byteLength === this.slabBytes && this.spare.length < this.maxSpare) {
      this.spare.push(Buffer.from(memory, 0, this.slabBytes));
    }
  }
}

/** Spare slabs kept, in bytes: enough for the pieces in flight between a decoder and tar. */
const MAX_SPARE_BYTES = 16 * 1024 * 1024;

interface SlabRecord {
  /** Pieces out and not yet given back. */
  out: number;
  /** No more pieces will be carved from it. */
  retired: boolean;
}
