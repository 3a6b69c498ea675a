/**
 * The one step every format shares: a cmdlet's plain JS objects become a typed value tree, typed by
 * the declared property types of the TypeRegistry and, where nothing is declared, by the JS value's
 * own type. Formats then only decide how each kind is written.
 */
import { AzsError, ExitCode } from '../errors.js';
import type { PropertyDef, PropertyType, TypeRegistry } from '../manifest/model.js';
import { MAX_TICKS, MIN_TICKS, TICKS_PER_MS, parseIsoDuration } from './scalars.js';

export type Value =
  | NullValue
  | { kind: 'String'; value: string }
  | { kind: 'Boolean'; value: boolean }
  | { kind: 'Int32'; value: number }
  | { kind: 'Int64'; value: bigint }
  | { kind: 'Double'; value: number }
  | { kind: 'DateTime'; value: Date }
  | { kind: 'TimeSpan'; ticks: bigint }
  | { kind: 'Guid'; value: string }
  | ListValue
  | ObjectValue;

export interface NullValue {
  kind: 'Null';
}

export interface ListValue {
  kind: 'List';
  /** The .NET array type PowerShell sees: a String[] property or any other list. */
  arrayType: 'System.String[]' | 'System.Object[]';
  items: Value[];
}

export interface ObjectValue {
  kind: 'Object';
  /** The declared or requested type name (e.g. `AzsBackup.Backup`); undefined for an anonymous object. */
  typeName: string | undefined;
  properties: PropertyValue[];
}

export interface PropertyValue {
  name: string;
  value: Value;
}

/**
 * The same JS object reached twice becomes the same node (PowerShell writes a Ref for it), and a
 * cycle becomes a node that contains itself instead of endless recursion.
 */
type Memo = Map<object, Map<string, ListValue | ObjectValue>>;

const NULL: NullValue = { kind: 'Null' };
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const guidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const offsetPattern = /(Z|[+-]\d{2}:?\d{2})$/i;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a Date';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 60 ? value.slice(0, 60) + '…' : value)}`;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return `the ${typeof value} ${String(value)}`;
  return `a value of type ${typeof value}`;
}

function mismatch(where: string, expected: string, value: unknown): AzsError {
  return new AzsError(`Cannot write ${where}: it is declared as ${expected} but the value is ${describe(value)}.`, {
    errorId: 'OutputPropertyTypeMismatch',
    category: 'InvalidData',
    // A cmdlet returning the wrong shape is a defect of the program, not of the user's data.
    exitCode: ExitCode.Failure,
    targetObject: where,
    recommendedAction: 'Report this as a bug: the cmdlet must return values of the types declared in manifests/Types.xml.',
  });
}

function unsupported(where: string, value: unknown): AzsError {
  return new AzsError(`Cannot write ${where}: ${describe(value)} has no output form.`, {
    errorId: 'OutputUnsupportedValue',
    category: 'InvalidData',
    exitCode: ExitCode.Failure,
    targetObject: where,
    recommendedAction:
      'Report this as a bug: output objects may hold strings, numbers, bigints, booleans, Dates, arrays, plain objects and null.',
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) return false;
  return !(
    value instanceof Map ||
    value instanceof Set ||
    ArrayBuffer.isView(value) ||
    value instanceof ArrayBuffer ||
    value instanceof RegExp
  );
}

function toDate(where: string, value: unknown): Date {
  let date: Date | undefined;
  if (value instanceof Date) date = value;
  // Times are UTC throughout the product; a string without an offset is read as UTC, not local time.
  else if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value)) {
    const text = value.replace(/^(\d{4}-\d{2}-\d{2}) /, '$1T');
    date = new Date(offsetPattern.test(text) || !text.includes('T') ? text : text + 'Z');
  }
  if (date === undefined || Number.isNaN(date.getTime())) throw mismatch(where, 'DateTime (a Date or an ISO 8601 string)', value);
  const year = date.getUTCFullYear();
  if (year < 1 || year > 9999) throw mismatch(where, 'DateTime between the years 1 and 9999', value);
  return date;
}

function toTicks(where: string, value: unknown): bigint {
  let ticks: bigint | undefined;
  if (typeof value === 'number' && Number.isFinite(value)) {
    // Milliseconds to 100 ns ticks; the split keeps integer milliseconds exact beyond 2^53 ticks.
    const whole = Math.trunc(value);
    ticks = BigInt(whole) * TICKS_PER_MS + BigInt(Math.round((value - whole) * 10_000));
  } else if (typeof value === 'bigint') {
    ticks = value * TICKS_PER_MS;
  } else if (typeof value === 'string') {
    ticks = parseIsoDuration(value);
  }
  if (ticks === undefined) throw mismatch(where, 'TimeSpan (milliseconds or an ISO 8601 duration such as PT20M48.5S)', value);
  if (ticks > MAX_TICKS || ticks < MIN_TICKS) throw mismatch(where, 'TimeSpan within ±10675199 days', value);
  return ticks;
}

function toInt64(where: string, value: unknown): bigint {
  let n: bigint | undefined;
  if (typeof value === 'bigint') n = value;
  else if (typeof value === 'number' && Number.isInteger(value)) n = BigInt(value);
  if (n === undefined || n < INT64_MIN || n > INT64_MAX) throw mismatch(where, 'Int64', value);
  return n;
}

function normalizeDeclared(
  where: string,
  type: PropertyType,
  typeName: string | undefined,
  value: unknown,
  types: TypeRegistry,
  memo: Memo,
): Value {
  if (value === null || value === undefined) return NULL;
  switch (type) {
    case 'String':
      if (typeof value !== 'string') throw mismatch(where, 'String', value);
      return { kind: 'String', value };
    case 'Boolean':
      if (typeof value !== 'boolean') throw mismatch(where, 'Boolean', value);
      return { kind: 'Boolean', value };
    case 'Int32': {
      const n = typeof value === 'bigint' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < INT32_MIN || n > INT32_MAX) throw mismatch(where, 'Int32', value);
      return { kind: 'Int32', value: n === 0 ? 0 : n };
    }
    case 'Int64':
      return { kind: 'Int64', value: toInt64(where, value) };
    case 'Double': {
      const n = typeof value === 'bigint' ? Number(value) : value;
      if (typeof n !== 'number') throw mismatch(where, 'Double', value);
      return { kind: 'Double', value: n };
    }
    case 'DateTime':
      return { kind: 'DateTime', value: toDate(where, value) };
    case 'TimeSpan':
      return { kind: 'TimeSpan', ticks: toTicks(where, value) };
    case 'Guid':
      if (typeof value !== 'string' || !guidPattern.test(value)) throw mismatch(where, 'Guid', value);
      return { kind: 'Guid', value: value.toLowerCase() };
    case 'String[]':
      if (!Array.isArray(value)) throw mismatch(where, 'String[]', value);
      return memoized(
        memo,
        value,
        'String[]',
        () => newList('System.String[]'),
        (list) => {
          for (const [i, item] of value.entries())
            list.items.push(normalizeDeclared(`${where}[${i}]`, 'String', undefined, item, types, memo));
        },
      );
    case 'Object':
      if (!isRecord(value)) throw mismatch(where, `Object${typeName ? ` (${typeName})` : ''}`, value);
      return normalizeObject(where, value, typeName, types, memo);
    case 'Object[]':
      if (!Array.isArray(value)) throw mismatch(where, `Object[]${typeName ? ` (${typeName}[])` : ''}`, value);
      return memoized(
        memo,
        value,
        `Object[]:${typeName ?? ''}`,
        () => newList('System.Object[]'),
        (list) => {
          value.forEach((item, i) => {
            const itemWhere = `${where}[${i}]`;
            // Elements that are objects take the declared element type; anything else speaks for itself.
            list.items.push(
              isRecord(item) ? normalizeObject(itemWhere, item, typeName, types, memo) : normalizeUndeclared(itemWhere, item, types, memo),
            );
          });
        },
      );
  }
}

function newList(arrayType: ListValue['arrayType']): ListValue {
  return { kind: 'List', arrayType, items: [] };
}

function memoized<T extends ListValue | ObjectValue>(memo: Memo, source: object, key: string, create: () => T, fill: (node: T) => void): T {
  let byKey = memo.get(source);
  const existing = byKey?.get(key);
  if (existing) return existing as T;
  const node = create();
  if (!byKey) memo.set(source, (byKey = new Map()));
  byKey.set(key, node);
  fill(node);
  return node;
}

function normalizeUndeclared(where: string, value: unknown, types: TypeRegistry, memo: Memo): Value {
  if (value === null || value === undefined) return NULL;
  switch (typeof value) {
    case 'string':
      return { kind: 'String', value };
    case 'boolean':
      return { kind: 'Boolean', value };
    case 'number':
      if (Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX) return { kind: 'Int32', value: value === 0 ? 0 : value };
      if (Number.isSafeInteger(value)) return { kind: 'Int64', value: BigInt(value) };
      return { kind: 'Double', value };
    case 'bigint':
      if (value < INT64_MIN || value > INT64_MAX) throw unsupported(where, value);
      return { kind: 'Int64', value };
    case 'object':
      if (value instanceof Date) return { kind: 'DateTime', value: toDate(where, value) };
      if (Array.isArray(value)) {
        return memoized(
          memo,
          value,
          'Object[]:',
          () => newList('System.Object[]'),
          (list) => {
            for (const [i, item] of value.entries()) list.items.push(normalizeUndeclared(`${where}[${i}]`, item, types, memo));
          },
        );
      }
      if (isRecord(value)) return normalizeObject(where, value, undefined, types, memo);
      throw unsupported(where, value);
    default:
      throw unsupported(where, value);
  }
}

function normalizeObject(
  where: string,
  source: Record<string, unknown>,
  typeName: string | undefined,
  types: TypeRegistry,
  memo: Memo,
): ObjectValue {
  return memoized(
    memo,
    source,
    `Object:${typeName ?? ''}`,
    (): ObjectValue => ({ kind: 'Object', typeName, properties: [] }),
    (node) => {
      const declared: readonly PropertyDef[] = (typeName !== undefined ? types.get(typeName)?.properties : undefined) ?? [];
      const label = typeName ?? where;
      const seen = new Set<string>();
      // Declared properties come first and always appear, so every object of a type has the same shape.
      for (const prop of declared) {
        seen.add(prop.name);
        const value = Object.hasOwn(source, prop.name) ? source[prop.name] : undefined;
        node.properties.push({
          name: prop.name,
          value: normalizeDeclared(`${label}.${prop.name}`, prop.type, prop.typeName, value, types, memo),
        });
      }
      for (const [name, value] of Object.entries(source)) {
        if (seen.has(name) || typeof value === 'function') continue;
        node.properties.push({ name, value: normalizeUndeclared(`${label}.${name}`, value, types, memo) });
      }
    },
  );
}

/** Normalises one output object (or any value a cmdlet writes) of the given type. */
export function normalizeValue(value: unknown, typeName: string | undefined, types: TypeRegistry, memo: Memo = new Map()): Value {
  if (isRecord(value)) return normalizeObject(typeName ?? 'output object', value, typeName, types, memo);
  return normalizeUndeclared(typeName ?? 'output value', value, types, memo);
}

/** Normalises every output object; they share one memo so repeated instances stay one node. */
export function normalizeObjects(objects: readonly unknown[], typeName: string | undefined, types: TypeRegistry): Value[] {
  const memo: Memo = new Map();
  return objects.map((o) => normalizeValue(o, typeName, types, memo));
}
