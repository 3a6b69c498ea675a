/** Gathers small buffers into pieces of at least `size` bytes (copying only when it must). */
export class WriteGatherer {
  private parts: Buffer[] = [];
  private length = 0;

  constructor(private readonly size: number) {}

  /** The gathered piece once `size` bytes are in, else undefined (a Transform then pushes nothing). */
  add(chunk: Buffer): Buffer | undefined {
    if (this.length === 0 && chunk.length >= this.size) return chunk;
    this.parts.push(chunk);
    this.length += chunk.length;
    return this.length >= this.size ? this.rest() : undefined;
  }

  /** Whatever is gathered, or undefined when nothing is. */
  rest(): Buffer | undefined {
    if (this.length === 0) return undefined;
    const piece = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.length);
    this.parts = [];
    this.length = 0;
    return piece;
  }
}
