/**
 * Format-List's look: `Name : value` lines with the names padded to the longest, a blank line before,
 * between and after the objects; a value spanning several lines continues under its first line.
 */
import type { ObjectValue, Value } from './normalize.js';
import { displayText, displayWidth, padEnd, sanitize } from './display.js';

function renderObject(o: ObjectValue): string {
  const nameWidth = Math.max(0, ...o.properties.map((p) => displayWidth(p.name)));
  const indent = ' '.repeat(nameWidth + 3);
  return o.properties
    .map((p) => {
      const [first = '', ...rest] = sanitize(displayText(p.value), true).split('\n');
      return [`${padEnd(p.name, nameWidth)} : ${first}`.trimEnd(), ...rest.map((l) => (indent + l).trimEnd())].join('\n');
    })
    .join('\n');
}

export function formatList(values: readonly Value[]): string {
  if (values.length === 0) return '';
  const blocks = values.map((v) => (v.kind === 'Object' ? renderObject(v) : sanitize(displayText(v), true)));
  return '\n' + blocks.join('\n\n') + '\n\n';
}
