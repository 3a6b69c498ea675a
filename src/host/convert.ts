/**
 * Turns the text of one argument into the typed value the manifest declares, and applies the
 * manifest's validation, with PowerShell's wording. A secret's value never appears in a message.
 */
import { quoted, usageError, type AzsError } from '../errors.js';
import type { ParameterDef } from '../manifest/model.js';

const int32 = { min: -2147483648, max: 2147483647 };

function shown(p: ParameterDef, raw: string): string {
  return p.secret ? 'the value given' : `"${quoted(raw)}"`;
}

function transformError(p: ParameterDef, raw: string, expected: string): AzsError {
  return usageError(
    `Cannot process argument transformation on parameter '${p.name}'. Cannot convert ${shown(p, raw)} to ${expected}.`,
    'ParameterArgumentTransformationError',
    p.name,
    `Give -${p.name} ${expected}.`,
  );
}

function validationError(p: ParameterDef, reason: string, action: string): AzsError {
  return usageError(`Cannot validate argument on parameter '${p.name}'. ${reason}`, 'ParameterArgumentValidationError', p.name, action);
}

/** `$true`, `true`, `1` and their opposites, case-insensitively, as PowerShell accepts for a switch. */
export function parseBoolean(raw: string): boolean | undefined {
  const v = raw.toLowerCase();
  if (v === '$true' || v === 'true' || v === '1') return true;
  if (v === '$false' || v === 'false' || v === '0') return false;
  return undefined;
}

function parseDate(p: ParameterDef, raw: string): Date {
  // Only unambiguous forms: ISO 8601 dates and date-times (a date alone is midnight UTC).
  const iso = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;
  const d = new Date(raw.replace(' ', 'T'));
  if (!iso.test(raw) || Number.isNaN(d.getTime())) throw transformError(p, raw, 'a DateTime (ISO 8601, e.g. 2024-05-01T12:00:00Z)');
  return d;
}

function parseGuid(p: ParameterDef, raw: string): string {
  const m = /^\{?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\}?$/i.exec(raw);
  if (!m) throw transformError(p, raw, 'a Guid (e.g. 6f1c2a9e-0b6d-4c43-9d1e-2f0a7c4b8e21)');
  return m[1]!.toLowerCase();
}

function parseInteger(p: ParameterDef, raw: string): number {
  const bounds = p.type === 'Int32' ? int32 : { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER };
  const expected = p.type === 'Int32' ? 'an Int32' : 'an Int64';
  if (!/^[+-]?\d+$/.test(raw.trim())) throw transformError(p, raw, expected);
  const n = Number(raw.trim());
  if (n < bounds.min || n > bounds.max) throw transformError(p, raw, `${expected} (${bounds.min} to ${bounds.max})`);
  return n;
}

/** Validates a string (String, one element of String[], or a SecureString) and returns its canonical form. */
export function validateText(p: ParameterDef, value: string): string {
  const v = p.validation;
  let result = value;
  if (v.set) {
    const match = v.set.find((s) => s.toLowerCase() === value.toLowerCase());
    if (match === undefined) {
      throw validationError(
        p,
        `The argument ${shown(p, value)} does not belong to the set "${v.set.join(',')}" specified by the ValidateSet attribute.`,
        `Supply an argument that is in the set (${v.set.join(', ')}) and then try the command again.`,
      );
    }
    result = match;
  }
  if (v.length) {
    if (value.length < v.length.min) {
      throw validationError(
        p,
        `The number of characters (${value.length}) in ${p.secret ? 'the value given' : 'the argument'} is too small. Specify an argument whose length is greater than or equal to "${v.length.min}".`,
        `Give at least ${v.length.min} characters.`,
      );
    }
    if (value.length > v.length.max) {
      throw validationError(
        p,
        `The character length (${value.length}) of ${p.secret ? 'the value given' : 'the argument'} is too long. Shorten it so that the length is fewer than or equal to "${v.length.max}" characters.`,
        `Give at most ${v.length.max} characters.`,
      );
    }
  }
  if (v.pattern && !new RegExp(v.pattern, 'i').test(value)) {
    throw validationError(
      p,
      `The argument ${shown(p, value)} does not match the "${v.pattern}" pattern.`,
      `Supply an argument that matches "${v.pattern}" and try the command again.`,
    );
  }
  return result;
}

function validateRange(p: ParameterDef, n: number): number {
  const r = p.validation.range;
  if (r && n < r.min) {
    throw validationError(
      p,
      `The ${n} argument is less than the minimum allowed range of ${r.min}.`,
      `Supply an argument that is greater than or equal to ${r.min} and then try the command again.`,
    );
  }
  if (r && n > r.max) {
    throw validationError(
      p,
      `The ${n} argument is greater than the maximum allowed range of ${r.max}.`,
      `Supply an argument that is less than or equal to ${r.max} and then try the command again.`,
    );
  }
  return n;
}

/**
 * Converts the raw values given for a non-switch, non-credential parameter. `raws` has one entry per
 * occurrence; only String[] may have several. One occurrence is a comma-separated list (`-Param
 * a,b`, as PowerShell reads it); several are the elements themselves, taken whole: a command's
 * argument such as 'printf "%s, %s"' must not be cut, and the PowerShell module passes each
 * element of an array as its own occurrence.
 */
export function convertValue(p: ParameterDef, raws: string[]): unknown {
  const raw = raws[raws.length - 1] ?? '';
  switch (p.type) {
    case 'String[]': {
      // One empty value is the empty list (-AlertCommand '' removes the alert command).
      if (raws.length === 1 && raws[0]!.trim() === '') return [];
      const items = raws.length > 1 ? raws : raws.flatMap((r) => r.split(',')).map((s) => s.trim());
      if (items.some((s) => s === '')) {
        throw validationError(
          p,
          'The argument contains an empty element.',
          `Give -${p.name} a comma-separated list without empty entries.`,
        );
      }
      return items.map((s) => validateText(p, s));
    }
    case 'Int32':
    case 'Int64': {
      const n = validateRange(p, parseInteger(p, raw));
      if (p.validation.set) validateText(p, String(n));
      return n;
    }
    case 'Boolean': {
      const b = parseBoolean(raw);
      if (b === undefined) throw transformError(p, raw, 'a Boolean ($true or $false)');
      return b;
    }
    case 'DateTime':
      return parseDate(p, raw);
    case 'Guid':
      return parseGuid(p, raw);
    case 'Switch':
    case 'String':
    case 'SecureString':
    case 'PSCredential':
      return validateText(p, raw);
  }
}
