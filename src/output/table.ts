/**
 * Format-Table's look: a blank line, the header, a line of dashes under each name, one row per
 * object, a blank line. Columns are the type's TableColumns (every property when it declares none),
 * each as wide as its widest cell; numbers and booleans align right.
 */
import type { ObjectValue, Value } from './normalize.js';
import { displayText, displayWidth, isRightAligned, padEnd, padStart, sanitize, truncate } from './display.js';

export interface TableOptions {
  /** Terminal width to fit the table into; unlimited when undefined. */
  width?: number;
}

/** Columns narrower than this are not cut further when the table must fit a width. */
const MIN_COLUMN = 4;

function columnsOf(objects: readonly ObjectValue[], declared: readonly string[]): string[] {
  if (declared.length > 0) return [...declared];
  const names: string[] = [];
  const seen = new Set<string>();
  for (const o of objects) {
    for (const p of o.properties) {
      if (!seen.has(p.name)) {
        seen.add(p.name);
        names.push(p.name);
      }
    }
  }
  return names;
}

function fitWidths(widths: number[], limit: number): number[] {
  const fitted = [...widths];
  const total = (): number => fitted.reduce((a, b) => a + b, 0) + Math.max(0, fitted.length - 1);
  while (total() > limit) {
    let widest = -1;
    for (let i = 0; i < fitted.length; i++) if (fitted[i]! > MIN_COLUMN && (widest < 0 || fitted[i]! > fitted[widest]!)) widest = i;
    if (widest < 0) break; // cannot fit: let the terminal wrap rather than show nothing
    fitted[widest]!--;
  }
  return fitted;
}

function renderTable(objects: readonly ObjectValue[], declared: readonly string[], options: TableOptions): string[] {
  const columns = columnsOf(objects, declared);
  const cells = objects.map((o) => {
    const byName = new Map(o.properties.map((p) => [p.name, p.value] as const));
    return columns.map((c) => byName.get(c) ?? ({ kind: 'Null' } as Value));
  });
  const texts = cells.map((row) => row.map((v) => sanitize(displayText(v), false)));
  const rightAligned = columns.map((_, i) => {
    const present = cells.map((row) => row[i]!).filter((v) => v.kind !== 'Null');
    return present.length > 0 && present.every(isRightAligned);
  });
  let widths = columns.map((name, i) => Math.max(displayWidth(name), ...texts.map((row) => displayWidth(row[i]!))));
  if (options.width !== undefined) widths = fitWidths(widths, options.width);

  const line = (row: readonly string[]): string =>
    row
      .map((text, i) => {
        const cut = truncate(text, widths[i]!);
        return rightAligned[i] ? padStart(cut, widths[i]!) : padEnd(cut, widths[i]!);
      })
      .join(' ')
      .trimEnd();
  return [line(columns), line(columns.map((c) => '-'.repeat(Math.min(displayWidth(c), widths[columns.indexOf(c)]!)))), ...texts.map(line)];
}

export function formatTable(values: readonly Value[], tableColumns: readonly string[], options: TableOptions = {}): string {
  if (values.length === 0) return '';
  // Objects in a row share one table; anything else (a bare string, a list) prints on its own line.
  const blocks: string[][] = [];
  let run: ObjectValue[] = [];
  const flush = (): void => {
    if (run.length > 0) blocks.push(renderTable(run, tableColumns, options));
    run = [];
  };
  for (const v of values) {
    if (v.kind === 'Object') run.push(v);
    else {
      flush();
      blocks.push(sanitize(displayText(v), true).split('\n'));
    }
  }
  flush();
  return '\n' + blocks.map((b) => b.join('\n')).join('\n\n') + '\n\n';
}
