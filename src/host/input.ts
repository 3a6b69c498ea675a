/**
 * Reads standard input a line at a time, or a keystroke at a time without echo for a prompt, from
 * one shared buffer so that secrets read in turn never lose bytes to each other.
 */
import { StringDecoder } from 'node:string_decoder';
import { AzsError, ExitCode } from '../errors.js';

/**
 * The longest line read from standard input: secrets and user names are short, and a line from
 * /dev/zero or a binary file piped in by mistake must not grow without end.
 */
export const MAX_INPUT_LINE_CHARS = 64 * 1024;

export type InputStream = NodeJS.ReadableStream & { setRawMode?(mode: boolean): unknown };

/**
 * How long the escape sequence at the start of `text` is: a key that types no character (an arrow,
 * Home, Delete, F1: ESC [ ... final, ESC O x), Alt with a key (ESC x), or Esc alone. A terminal
 * writes a key's sequence at once, so what has arrived of it is all of it.
 */
function escapeLength(text: string): number {
  const printable = (i: number, from = ' ', to = '~'): boolean => text[i] !== undefined && text[i]! >= from && text[i]! <= to;
  if (!printable(1)) return 1;
  if (text[1] === 'O') return printable(2) ? 3 : 2;
  if (text[1] !== '[') return 2;
  // CSI: parameter and intermediate bytes (0x20-0x3f), then one final byte (0x40-0x7e). An Enter
  // or a Backspace after a cut-short sequence is still a key of its own.
  let i = 2;
  while (printable(i, ' ', '?')) i++;
  return printable(i, '@') ? i + 1 : i;
}

export class InputReader {
  private buffer = '';
  private ended = false;
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly stream: InputStream) {}

  /** No text has been read yet. */
  private atStart = true;

  /**
   * A byte order mark that starts the input (a file saved as "UTF-8 with BOM") is no part of the
   * first secret: kept, it would be an invisible first character no one types again.
   */
  private append(text: string): void {
    if (this.atStart && text !== '') {
      this.atStart = false;
      this.buffer += text.replace(/^\uFEFF/, '');
    } else this.buffer += text;
  }

  private watching = false;
  private wake: ((more: boolean) => void) | undefined;
  private failed: Error | undefined;

  /**
   * 'end' is watched for the reader's whole life: a stream can emit it right after the last
   * 'data', while no fill() is waiting, and it is never emitted again.
   */
  private watch(): void {
    if (this.watching) return;
    this.watching = true;
    const s = this.stream as InputStream & { readableEnded?: boolean };
    if (s.readableEnded) this.ended = true;
    s.once('end', () => {
      this.ended = true;
      this.append(this.decoder.end());
      this.wake?.(false);
    });
    s.once('error', (e: Error) => {
      this.failed = e;
      this.wake?.(false);
    });
  }

  /** Waits for the next chunk; false once the stream has ended. Leaves the stream paused. */
  private fill(): Promise<boolean> {
    this.watch();
    if (this.failed) return Promise.reject(this.failed);
    if (this.ended) return Promise.resolve(false);
    const s = this.stream;
    return new Promise((resolve, reject) => {
      const onData = (chunk: Buffer | string): void => {
        this.append(typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
        done(true);
      };
      const done = (more: boolean): void => {
        s.off('data', onData);
        s.pause();
        // A paused stdin pipe still holds the event loop open; let the process end while nobody reads.
        handle.unref?.();
        this.wake = undefined;
        if (this.failed) reject(this.failed);
        else resolve(more);
      };
      this.wake = done;
      const handle = s as InputStream & { ref?(): void; unref?(): void };
      handle.ref?.();
      s.on('data', onData);
      s.resume();
    });
  }

  /** The next line without its line ending; undefined at the end of input. */
  async line(): Promise<string | undefined> {
    for (;;) {
      const i = this.buffer.indexOf('\n');
      if (i >= 0) {
        const l = this.buffer.slice(0, i).replace(/\r$/, '');
        this.buffer = this.buffer.slice(i + 1);
        return l;
      }
      if (this.buffer.length > MAX_INPUT_LINE_CHARS) {
        this.buffer = '';
        throw new AzsError(
          `A line of standard input is longer than ${MAX_INPUT_LINE_CHARS} characters; secrets and user names are far shorter.`,
          {
            errorId: 'InputLineTooLong',
            category: 'InvalidArgument',
            exitCode: ExitCode.Usage,
            recommendedAction:
              'Give each value on its own line of standard input (what is piped in may be a wrong file), or use the environment ' +
              'variable AZSBACKUP_<PARAMETERNAME>.',
          },
        );
      }
      if (!(await this.fill())) {
        if (this.buffer === '') return undefined;
        const l = this.buffer;
        this.buffer = '';
        return l;
      }
    }
  }

  /**
   * Reads keystrokes in raw mode until Enter, echoing nothing. Ctrl-C stops the command
   * (exit 130), as it would have without raw mode. Keys that type no character (arrows, Home,
   * Delete, function keys) add nothing, as at PowerShell's Read-Host -AsSecureString: their escape
   * sequences' text would be a part of the secret the operator never typed.
   */
  async hidden(): Promise<string> {
    const s = this.stream;
    s.setRawMode?.(true);
    let value = '';
    try {
      for (;;) {
        while (this.buffer.length) {
          if (this.buffer[0] === '\u001b') {
            this.buffer = this.buffer.slice(escapeLength(this.buffer));
            continue;
          }
          const ch = this.buffer[0]!;
          this.buffer = this.buffer.slice(1);
          if (ch === '\r' || ch === '\n') {
            if (ch === '\r' && this.buffer[0] === '\n') this.buffer = this.buffer.slice(1);
            return value;
          }
          if (ch === '\u0003') {
            throw new AzsError('The prompt was interrupted.', {
              errorId: 'PromptInterrupted',
              category: 'OperationStopped',
              exitCode: ExitCode.Interrupted,
            });
          }
          if (ch === '\u0004' && value === '') return value;
          if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
          else if (ch >= ' ') value += ch;
        }
        if (!(await this.fill())) return value;
      }
    } finally {
      s.setRawMode?.(false);
    }
  }
}
