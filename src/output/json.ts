/**
 * JSON: for a cmdlet that returns a list, always an array (`[]` for none, `[x]` for one), so a
 * script never has to guess; for a single-object cmdlet, the object itself (nothing for none); pretty-printed with two spaces. Int64 is written as its exact digits (JSON numbers have no
 * size limit; consumers that need more than 2^53 can read them exactly).
 */
import { AzsError, ExitCode } from '../errors.js';
import type { Value } from './normalize.js';
import { formatDateTimeIso, formatXsdDuration } from './scalars.js';

const INDENT = '  ';

function cycle(): AzsError {
  return new AzsError('Cannot write the output as JSON: an object contains itself.', {
    errorId: 'OutputCycle',
    category: 'InvalidData',
    exitCode: ExitCode.Failure,
    recommendedAction: 'Use --output clixml, which keeps references, or report this as a bug of the cmdlet.',
  });
}

function writeValue(value: Value, depth: number, open: Set<Value>): string {
  switch (value.kind) {
    case 'Null':
      return 'null';
    case 'String':
    case 'Guid':
      return JSON.stringify(value.value);
    case 'Boolean':
      return value.value ? 'true' : 'false';
    case 'Int32':
      return String(value.value);
    case 'Int64':
      return value.value.toString();
    case 'Double':
      // JSON has no NaN or Infinity; ConvertTo-Json writes them as strings too.
      if (Number.isNaN(value.value)) return '"NaN"';
      if (!Number.isFinite(value.value)) return value.value > 0 ? '"Infinity"' : '"-Infinity"';
      return JSON.stringify(value.value);
    case 'DateTime':
      return JSON.stringify(formatDateTimeIso(value.value));
    case 'TimeSpan':
      return JSON.stringify(formatXsdDuration(value.ticks));
    case 'List':
    case 'Object': {
      if (open.has(value)) throw cycle();
      open.add(value);
      const inner = INDENT.repeat(depth + 1);
      const parts =
        value.kind === 'List'
          ? value.items.map((item) => inner + writeValue(item, depth + 1, open))
          : value.properties.map((p) => `${inner}${JSON.stringify(p.name)}: ${writeValue(p.value, depth + 1, open)}`);
      open.delete(value);
      const [start, end] = value.kind === 'List' ? ['[', ']'] : ['{', '}'];
      return parts.length === 0 ? start + end : `${start}\n${parts.join(',\n')}\n${INDENT.repeat(depth)}${end}`;
    }
  }
}

export function formatJson(values: readonly Value[], list = false): string {
  if (values.length === 0 && !list) return '';
  const root: Value = values.length === 1 && !list ? values[0]! : { kind: 'List', arrayType: 'System.Object[]', items: [...values] };
  return writeValue(root, 0, new Set()) + '\n';
}
