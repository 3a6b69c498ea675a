/**
 * The output room: objects a cmdlet returns → the text for stdout in the format the user chose.
 * Every format reads the same normalised value tree (normalize.ts), typed by Types.xml.
 */
import { usageError } from '../errors.js';
import type { TypeRegistry } from '../manifest/model.js';
import { formatClixml } from './clixml.js';
import { formatJson } from './json.js';
import { formatList } from './list.js';
import { normalizeObjects } from './normalize.js';
import { formatTable } from './table.js';

export type OutputFormat = 'json' | 'clixml' | 'table' | 'list';

export const outputFormats: readonly OutputFormat[] = ['json', 'clixml', 'table', 'list'];

export interface FormatOptions {
  /** Terminal width a table should fit into (e.g. process.stdout.columns); unlimited when undefined. */
  width?: number;
  /** The cmdlet returns a list: JSON is always an array, `[]` when there is nothing. */
  list?: boolean;
}

export function isOutputFormat(value: string): value is OutputFormat {
  return (outputFormats as readonly string[]).includes(value);
}

/**
 * The whole text for stdout: ends in a newline when non-empty, and is empty for no objects in every
 * format (for CLIXML not even the `#< CLIXML` line is printed then), except JSON for a list: `[]`.
 */
export function formatObjects(
  objects: unknown[],
  typeName: string | undefined,
  format: OutputFormat,
  types: TypeRegistry,
  options: FormatOptions = {},
): string {
  if (!isOutputFormat(format)) {
    throw usageError(
      `Unknown output format '${String(format)}'.`,
      'UnknownOutputFormat',
      format,
      `Use --output with one of: ${outputFormats.join(', ')}.`,
    );
  }
  const values = normalizeObjects(objects, typeName, types);
  switch (format) {
    case 'json':
      return formatJson(values, options.list ?? false);
    case 'clixml':
      return formatClixml(values);
    case 'table':
      return formatTable(values, (typeName !== undefined ? types.get(typeName)?.tableColumns : undefined) ?? [], options);
    case 'list':
      return formatList(values);
  }
}

export { encodeClixmlString, CLIXML_HEADER } from './clixml.js';
