/**
 * A few buffers kept for reuse: the same memory goes round instead of fresh memory being
 * allocated (and faulted in, a page at a time) for every job (docs/PERFORMANCE.md).
 */
export class SpareBuffers {
  private readonly spare: Buffer[] = [];

  constructor(private readonly max: number) {}

  /** A spare buffer of at least `min` bytes, or a new one of max(min, size) bytes. */
  take(min: number, size: number): Buffer {
    const i = this.spare.findIndex((b) => b.length >= min);
    return i >= 0 ? this.spare.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(Math.max(min, size));
  }

  /** A buffer nobody reads or writes any more. */
  giveBack(buffer: Buffer): void {
    if (this.spare.length < this.max) this.spare.push(buffer);
  }
}
