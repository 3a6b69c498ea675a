import type { TarEntry, TarPart } from './tar-scanner.js';

/**
 * Splits a checked tar stream between GNU tar and the files a restore writes itself
 * (direct-files.ts). An entry taken away from GNU tar leaves its stream whole: its extended
 * headers, its header block, its data and its padding, so GNU tar reads one archive with that
 * entry missing and never a pax header meant for it. Since an extended header comes before the
 * header that says what the entry is, every header piece is held back until then.
 *
 * Pieces are views of the chunks the restore reads, never copies: a chunk goes back to its pool
 * (`recycle`) only once every piece of it is done with, GNU tar's pieces once its pipe has taken
 * them (`written`) and the others once the router's owner says so (`release`).
 */
export type RouteStep =
  | { kind: 'tar'; piece: Buffer }
  | { kind: 'open'; entry: TarEntry }
  | { kind: 'data'; piece: Buffer }
  | { kind: 'close' };

export class ArchiveRouter {
  private steps: RouteStep[] = [];
  private held: Buffer[] = [];
  /** The data bytes of the entry taken away that are still to come; padding after it goes nowhere. */
  private takenLeft = 0;
  private dropping = false;
  /** What each piece handed out is a view of, and how many pieces of each chunk are not yet done with. */
  private readonly origin = new Map<Buffer, Buffer>();
  private readonly pending = new Map<Buffer, number>();
  private current: Buffer | undefined;

  constructor(
    /** Whether this entry's data is taken away from GNU tar. */
    private readonly takes: (entry: TarEntry) => boolean,
    private readonly recycle: ((chunk: Buffer) => void) | undefined,
  ) {}

  /** Where the scanner reports each entry (after its guard has passed it). */
  entry(entry: TarEntry): void {
    if (this.takes(entry)) {
      for (const piece of this.held) this.done(piece);
      this.held = [];
      this.steps.push({ kind: 'open', entry });
      this.takenLeft = entry.size;
      this.dropping = true;
      if (entry.size === 0) this.steps.push({ kind: 'close' });
      return;
    }
    this.flushHeld();
  }

  /** Where the scanner reports each piece of the chunk being scanned. */
  piece(piece: Buffer, part: TarPart): void {
    if (part === 'meta' || part === 'end') this.dropping = false;
    if (part === 'meta') {
      this.held.push(this.view(piece));
      return;
    }
    if (part === 'end') this.flushHeld();
    if (part === 'data' && this.takenLeft > 0) {
      this.steps.push({ kind: 'data', piece: this.view(piece) });
      this.takenLeft -= piece.length;
      if (this.takenLeft === 0) this.steps.push({ kind: 'close' });
      return;
    }
    if (part === 'padding' && this.dropping) return;
    this.toTar(this.view(piece));
  }

  /** Starts routing `chunk` (scan it next); then take() its steps. */
  begin(chunk: Buffer): void {
    this.current = chunk;
    this.pending.set(chunk, (this.pending.get(chunk) ?? 0) + 1);
  }

  /** The steps of the chunk scanned since begin(), in order; the chunk's own hold on itself ends. */
  take(): RouteStep[] {
    const steps = this.steps;
    this.steps = [];
    if (this.current) this.unhold(this.current);
    this.current = undefined;
    return steps;
  }

  /** The stream ended: held header pieces (the end of the archive) go to GNU tar. */
  finish(): RouteStep[] {
    this.flushHeld();
    return this.take();
  }

  /** A piece GNU tar's pipe has taken, or a data piece copied: its chunk may go back once all are. */
  done(piece: Buffer): void {
    const chunk = this.origin.get(piece);
    if (!chunk) return;
    this.origin.delete(piece);
    this.unhold(chunk);
  }

  private unhold(chunk: Buffer): void {
    const left = (this.pending.get(chunk) ?? 1) - 1;
    if (left > 0) {
      this.pending.set(chunk, left);
      return;
    }
    this.pending.delete(chunk);
    this.recycle?.(chunk);
  }

  /** `piece` (always a view of its own, never the chunk object) counted against its chunk. */
  private view(piece: Buffer): Buffer {
    const chunk = this.current!;
    this.origin.set(piece, chunk);
    this.pending.set(chunk, (this.pending.get(chunk) ?? 0) + 1);
    return piece;
  }

  private flushHeld(): void {
    for (const piece of this.held) this.toTar(piece);
    this.held = [];
  }

  /** Next to the last piece for GNU tar when it continues it in the same memory, so one write carries both. */
  private toTar(piece: Buffer): void {
    const last = this.steps.at(-1);
    if (
      last?.kind === 'tar' &&
      last.piece.buffer === piece.buffer &&
      last.piece.byteOffset + last.piece.length === piece.byteOffset &&
      this.origin.get(last.piece) === this.origin.get(piece)
    ) {
      const chunk = this.origin.get(piece)!;
      const joined = Buffer.from(piece.buffer, last.piece.byteOffset, last.piece.length + piece.length);
      this.origin.delete(last.piece);
      this.origin.delete(piece);
      this.unhold(chunk);
      this.origin.set(joined, chunk);
      last.piece = joined;
      return;
    }
    this.steps.push({ kind: 'tar', piece });
  }
}
