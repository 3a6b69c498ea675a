/**
 * A FIFO of byte slices that hands out exact lengths without copying when it can: the cipher
 * stages feed the slices to the cipher one by one, so a 4 MiB chunk made of 64 KiB reads is never
 * concatenated.
 */
export class ByteQueue {
  private readonly slices: Buffer[] = [];
  /** With trackConsumed: the buffers as pushed, beside what is left of each in `slices`. */
  private readonly pushed: Buffer[] | undefined;
  private consumed: Buffer[] = [];
  private head = 0;
  length = 0;

  /**
   * trackConsumed: remember which pushed buffers have been taken to their last byte, for
   * takeConsumed(), so whoever gave them may reuse them.
   */
  constructor(opts: { trackConsumed?: boolean } = {}) {
    if (opts.trackConsumed) this.pushed = [];
  }

  push(slice: Buffer): void {
    if (slice.length === 0) return;
    this.slices.push(slice);
    this.pushed?.push(slice);
    this.length += slice.length;
  }

  /** The pushed buffers taken to their last byte since the last call (trackConsumed only). */
  takeConsumed(): Buffer[] {
    const done = this.consumed;
    this.consumed = [];
    return done;
  }

  /** Removes exactly n bytes (n <= length) and returns them as slices of the queued buffers. */
  takeSlices(n: number): Buffer[] {
    const out: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const first = this.slices[this.head]!;
      if (first.length <= need) {
        out.push(first);
        need -= first.length;
        this.slices[this.head] = undefined as unknown as Buffer;
        if (this.pushed) {
          this.consumed.push(this.pushed[this.head]!);
          this.pushed[this.head] = undefined as unknown as Buffer;
        }
        this.head++;
      } else {
        out.push(first.subarray(0, need));
        this.slices[this.head] = first.subarray(need);
        need = 0;
      }
    }
    this.length -= n;
    // Compact now and then so the array does not grow with the stream.
    if (this.head > 64 && this.head * 2 > this.slices.length) {
      this.slices.splice(0, this.head);
      this.pushed?.splice(0, this.head);
      this.head = 0;
    }
    return out;
  }

  /** Removes exactly n bytes as one contiguous buffer. */
  take(n: number): Buffer {
    const slices = this.takeSlices(n);
    return slices.length === 1 ? slices[0]! : Buffer.concat(slices, n);
  }
}
