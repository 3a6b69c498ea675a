/**
 * How one value reads on a terminal in table and list views, in PowerShell's manner: True/False,
 * `{a, b}` for a list (at most four items, like $FormatEnumerationLimit), `@{A=1; B=x}` for an
 * object, ISO times, TimeSpans in their constant form, and nothing for null.
 */
import type { Value } from './normalize.js';
import { formatDateTimeIso, formatDoubleDotNet, formatTimeSpanDisplay } from './scalars.js';

export const ENUMERATION_LIMIT = 4;
/** Nested objects deeper than this print as `…`; the full shape is what --output json is for. */
const NESTING_LIMIT = 2;

/** Text of a value inside a compact form (`{..}` or `@{..}`): one line, nested objects in short form. */
function compact(value: Value, depth: number): string {
  switch (value.kind) {
    case 'List': {
      if (depth > NESTING_LIMIT) return '{…}';
      const shown = value.items.slice(0, ENUMERATION_LIMIT).map((item) => compact(item, depth + 1));
      return `{${shown.join(', ')}${value.items.length > ENUMERATION_LIMIT ? '…' : ''}}`;
    }
    case 'Object':
      if (depth > NESTING_LIMIT) return '@{…}';
      return `@{${value.properties.map((p) => `${p.name}=${compact(p.value, depth + 1)}`).join('; ')}}`;
    default:
      return scalarText(value);
  }
}

function scalarText(value: Exclude<Value, { kind: 'List' | 'Object' }>): string {
  switch (value.kind) {
    case 'Null':
      return '';
    case 'String':
    case 'Guid':
      return value.value;
    case 'Boolean':
      return value.value ? 'True' : 'False';
    case 'Int32':
      return String(value.value);
    case 'Int64':
      return value.value.toString();
    case 'Double':
      return formatDoubleDotNet(value.value, 'Infinity');
    case 'DateTime':
      return formatDateTimeIso(value.value);
    case 'TimeSpan':
      return formatTimeSpanDisplay(value.ticks);
  }
}

/** The text of a value as a table cell or list entry (may contain line breaks for strings). */
export function displayText(value: Value): string {
  return compact(value, 0);
}

/** Numbers and booleans align right, as Format-Table aligns value types. */
export function isRightAligned(value: Value): boolean {
  return value.kind === 'Int32' || value.kind === 'Int64' || value.kind === 'Double' || value.kind === 'Boolean';
}

/**
 * Data must not drive the terminal: control characters other than line breaks and tabs are shown
 * as U+FFFD, so an escape sequence in a role's error text cannot rewrite the screen.
 */
export function sanitize(text: string, keepLineBreaks: boolean): string {
  let t = text.replace(/\r\n?/g, '\n').replace(/\t/g, ' ');
  if (!keepLineBreaks) t = t.replace(/\n/g, ' ');
  return t.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, '\uFFFD');
}

function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0x303e) ||
    (cp >= 0x3041 && cp <= 0x33ff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0xa000 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}

function isZeroWidth(cp: number): boolean {
  return (cp >= 0x0300 && cp <= 0x036f) || cp === 0x200b || cp === 0x200c || cp === 0x200d || (cp >= 0xfe00 && cp <= 0xfe0f);
}

/** Terminal columns a single-line text takes: wide East Asian characters and emoji count twice. */
export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    width += isZeroWidth(cp) ? 0 : isWide(cp) ? 2 : 1;
  }
  return width;
}

/** Cuts a single-line text to at most `width` columns, marking the cut with `…`. */
export function truncate(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  let out = '';
  let used = 0;
  for (const ch of text) {
    const w = displayWidth(ch);
    if (used + w > width - 1) break;
    out += ch;
    used += w;
  }
  return out + '…';
}

export function padEnd(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - displayWidth(text)));
}

export function padStart(text: string, width: number): string {
  return ' '.repeat(Math.max(0, width - displayWidth(text))) + text;
}
