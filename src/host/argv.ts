/**
 * The command line of one cmdlet, built from its manifest. Names are normalised first (PowerShell
 * or GNU style, any case, a unique prefix, aliases) to the manifest's canonical names, so that the
 * option parser (yargs-parser, configured from the manifest) sees one unambiguous spelling. Then
 * the parameter set is resolved as PowerShell resolves it, positional arguments are bound for that
 * set, and values are converted and validated.
 */
import { quoted, usageError, type AzsError } from '../errors.js';
import { resolve as resolvePath } from 'node:path';
import { isPathParameter, keptAsGiven, type CmdletManifest, type ParameterDef, type ParameterType } from '../manifest/model.js';
import type { BoundParameters } from './cmdlet.js';
import { convertValue, parseBoolean } from './convert.js';
import { closeMatches } from './similar.js';

export type OutputFormat = 'json' | 'clixml' | 'table' | 'list';
export const outputFormats: readonly OutputFormat[] = ['json', 'clixml', 'table', 'list'];
export type ProgressMode = 'json' | 'none';

/** A secret parameter named on the command line; secrets.ts reads its value. */
export interface SecretRequest {
  parameter: ParameterDef;
  /** `-`: read from standard input; `ask`: no value given, so the environment or a prompt. */
  source: 'stdin' | 'ask';
  /** A PSCredential's user name, when given as its value. */
  userName?: string;
}

export interface CommandLine {
  parameterSetName: string;
  /** Typed values of the non-secret parameters given. */
  params: BoundParameters;
  /** Secret parameters named on the command line, in command-line order. */
  secrets: SecretRequest[];
  whatIf: boolean;
  /** -Confirm as given: undefined when absent. */
  confirm: boolean | undefined;
  output: OutputFormat | undefined;
  progress: ProgressMode | undefined;
  /** `--dialect powershell`: the module calls; messages use PowerShell's syntax, streams go out as JSON. */
  dialect: Dialect;
  /** -Verbose / -Debug: the steps of the work (always sent, as JSON, in the powershell dialect). */
  verbose: boolean;
  debug: boolean;
}

export type Dialect = 'cli' | 'powershell';

type CommonName = 'Output' | 'Progress' | 'WhatIf' | 'Confirm' | 'Dialect' | 'Verbose' | 'Debug';

/** The common switches and the field of CommandLine each sets. */
const commonSwitches = { WhatIf: 'whatIf', Confirm: 'confirm', Verbose: 'verbose', Debug: 'debug' } as const;

/** A name the command line accepts: a manifest parameter or one of the host's common parameters. */
interface Known {
  name: string;
  aliases: string[];
  type: ParameterType;
  param?: ParameterDef;
  common?: CommonName;
  /** Not reached by a prefix, so adding it never makes a manifest parameter's prefix ambiguous. */
  exactOnly?: boolean;
}

interface Occurrence {
  known: Known;
  /** Raw values given; for a switch, 'true' or 'false'. */
  values: string[];
  /** For secrets. */
  secretSource?: 'stdin' | 'ask';
  userName?: string;
}

function knownNames(m: CmdletManifest): Known[] {
  const known: Known[] = m.parameters.map((p) => ({ name: p.name, aliases: p.aliases, type: p.type, param: p }));
  known.push({ name: 'Output', aliases: [], type: 'String', common: 'Output' });
  known.push({ name: 'Progress', aliases: [], type: 'String', common: 'Progress' });
  known.push({ name: 'Dialect', aliases: [], type: 'String', common: 'Dialect', exactOnly: true });
  known.push({ name: 'Verbose', aliases: ['vb'], type: 'Switch', common: 'Verbose', exactOnly: true });
  known.push({ name: 'Debug', aliases: ['db'], type: 'Switch', common: 'Debug', exactOnly: true });
  if (m.supportsShouldProcess) {
    known.push({ name: 'WhatIf', aliases: ['wi'], type: 'Switch', common: 'WhatIf' });
    known.push({ name: 'Confirm', aliases: ['cf'], type: 'Switch', common: 'Confirm' });
  }
  return known;
}

const norm = (s: string): string => s.toLowerCase().replace(/-/g, '');

/** Exact name or alias first; otherwise a unique prefix of a name or alias. */
function lookup(known: Known[], typed: string): Known[] {
  const key = norm(typed);
  const exact = known.filter((k) => norm(k.name) === key || k.aliases.some((a) => norm(a) === key));
  if (exact.length) return exact;
  return known.filter((k) => !k.exactOnly && (norm(k.name).startsWith(key) || k.aliases.some((a) => norm(a).startsWith(key))));
}

function resolveName(m: CmdletManifest, known: Known[], typed: string, gnu: boolean): { known: Known; negated: boolean } {
  const found = lookup(known, typed);
  if (found.length === 1) return { known: found[0]!, negated: false };
  if (found.length > 1) {
    throw usageError(
      `Parameter cannot be processed because the parameter name '${quoted(typed)}' is ambiguous. Possible matches include: ${found.map((k) => `-${k.name}`).join(' ')}.`,
      'AmbiguousParameter',
      typed,
      'Type more of the parameter name.',
    );
  }
  // GNU negation --no-switch, only when no parameter is called "no...".
  if (gnu && /^no-?/i.test(typed)) {
    const rest = typed.replace(/^no-?/i, '');
    const neg = lookup(known, rest);
    if (neg.length === 1 && (neg[0]!.type === 'Switch' || neg[0]!.type === 'Boolean')) return { known: neg[0]!, negated: true };
  }
  const suggestions = closeMatches(
    typed,
    known.map((k) => k.name),
  );
  throw usageError(
    `A parameter cannot be found that matches parameter name '${quoted(typed)}'.${suggestions.length ? ` Did you mean ${suggestions.map((s) => `-${s}`).join(' or ')}?` : ''}`,
    'ParameterNotFound',
    typed,
    `Run 'azsbackup ${m.name} -?' to list its parameters.`,
  );
}

/** Whether the parameter token `t` names one of the cmdlet's parameters (or a GNU negation of one). */
function namesParameter(known: Known[], t: string): boolean {
  const gnu = t.startsWith('--');
  const body = t.slice(gnu ? 2 : 1);
  const sep = gnu ? body.indexOf('=') : body.indexOf(':');
  const typed = sep >= 0 ? body.slice(0, sep) : body;
  return lookup(known, typed).length > 0 || (gnu && /^no-?/i.test(typed) && lookup(known, typed.replace(/^no-?/i, '')).length > 0);
}

/**
 * Whether the cmdlet's arguments ask for its help: `-?`, `--help` or `-help` anywhere before `--`
 * (none can be a value: a value that looks like a parameter is given inline, -Name:-?), and `/?`
 * where a parameter name could stand. After a parameter that takes a value it is that value: taken
 * for help there, a command printed help and exited 0 having done nothing.
 */
export function asksForHelp(m: CmdletManifest, args: readonly string[]): boolean {
  const known = knownNames(m);
  for (const [i, t] of args.entries()) {
    if (t === '--') return false;
    const token = t.toLowerCase();
    if (token === '-?' || token === '--help' || token === '-help') return true;
    if (token === '/?' && !(i > 0 && takesNextToken(known, args[i - 1]!))) return true;
  }
  return false;
}

/** Whether `t` names a parameter whose value is the next token (not a switch, no inline value). */
function takesNextToken(known: Known[], t: string): boolean {
  if (!isParameterToken(t)) return false;
  const gnu = t.startsWith('--');
  const body = t.slice(gnu ? 2 : 1);
  if (body.includes(gnu ? '=' : ':')) return false;
  const found = lookup(known, body);
  return found.length === 1 && found[0]!.type !== 'Switch';
}

/** A token that names a parameter rather than being a value: `-Name`, `--name`; not `-`, `-5` or `--`. */
function isParameterToken(t: string): boolean {
  return /^--?[A-Za-z?]/.test(t);
}

function missingArgument(p: Known): AzsError {
  return usageError(
    `Missing an argument for parameter '${p.name}'. Specify a parameter of type '${p.type}' and try again.`,
    'MissingArgument',
    p.name,
    `Give a value after -${p.name}, or write -${p.name}:<value> when the value starts with '-'.`,
  );
}

export function secretOnCommandLine(p: ParameterDef): AzsError {
  const env = `AZSBACKUP_${p.name.toUpperCase()}`;
  const what = p.type === 'PSCredential' ? `the password of -${p.name}` : `-${p.name}`;
  return usageError(
    `A value for ${what} was given on the command line. Secrets are never taken from the command line, where other users and the shell history can read them.`,
    'SecretOnCommandLine',
    p.name,
    p.type === 'PSCredential'
      ? `Give the user name as the value (-${p.name} 'DOMAIN\\user') and the password one of three ways: '-${p.name} -' reads the user name and then the password from standard input (one line each); the environment variable ${env} supplies the password; or, on a terminal, you are prompted without echo.`
      : `Pass it one of three ways: '-${p.name} -' reads it from standard input (one line); the environment variable ${env} supplies it; or name -${p.name} without a value (or leave it out when mandatory) on a terminal to be prompted without echo.`,
  );
}

/** Where tokenize is in argv: taking a parameter's value from the next token moves it on. */
interface Cursor {
  args: string[];
  i: number;
}

/** One -Name, -Name:value, --name or --name=value token, its name resolved. */
function parameterToken(m: CmdletManifest, known: Known[], t: string): { k: Known; negated: boolean; inline: string | undefined } {
  const gnu = t.startsWith('--');
  const body = t.slice(gnu ? 2 : 1);
  // PowerShell binds -Name:value; GNU binds --name=value. A Windows path keeps its own colons.
  const sep = gnu ? body.indexOf('=') : body.indexOf(':');
  const typed = sep >= 0 ? body.slice(0, sep) : body;
  const inline = sep >= 0 ? body.slice(sep + 1) : undefined;
  const { known: k, negated } = resolveName(m, known, typed, gnu);
  return { k, negated, inline };
}

/** The occurrence of `k`, new at its first mention; only a String[] may be named twice. */
function occurrenceOf(byName: Map<string, Occurrence>, named: Occurrence[], k: Known): Occurrence {
  let occ = byName.get(k.name);
  if (occ && k.type !== 'String[]') {
    throw usageError(
      `Cannot bind parameter because parameter '${k.name}' is specified more than once.`,
      'ParameterAlreadyBound',
      k.name,
      `Give -${k.name} once${k.aliases.length ? ` (its aliases ${k.aliases.join(', ')} name the same parameter)` : ''}.`,
    );
  }
  if (!occ) {
    occ = { known: k, values: [] };
    byName.set(k.name, occ);
    named.push(occ);
  }
  return occ;
}

/** A switch's value: -Name, -Name:$false, --no-name. */
function switchValue(k: Known, negated: boolean, inline: string | undefined): string {
  let value = !negated;
  if (inline !== undefined) {
    const b = parseBoolean(inline);
    if (b === undefined) {
      throw usageError(
        `Cannot convert '${quoted(inline)}' to the type 'Switch' required by parameter '${k.name}'. Use -${k.name}:$true or -${k.name}:$false.`,
        'ParameterArgumentTransformationError',
        k.name,
        `Write -${k.name}, -${k.name}:$false or --no-${k.name.toLowerCase()}.`,
      );
    }
    value = negated ? !b : b;
  }
  return String(value);
}

/**
 * Where a secret comes from. `-` reads stdin; no value means the environment or a prompt; anything
 * else is refused, except a PSCredential's user name.
 */
function bindSecret(known: Known[], param: ParameterDef, inline: string | undefined, cur: Cursor, occ: Occurrence): void {
  const after = cur.args[cur.i + 1];
  // `-Password -Hunter2` is a password that starts with a dash, not a parameter to look up and
  // then quote back in a ParameterNotFound error.
  if (inline === undefined && after !== undefined && isParameterToken(after) && !namesParameter(known, after))
    throw secretOnCommandLine(param);
  const v =
    inline !== undefined ? inline : after !== undefined && !isParameterToken(after) && after !== '--' ? cur.args[++cur.i] : undefined;
  if (v === '-') occ.secretSource = 'stdin';
  else if (v === undefined) occ.secretSource = 'ask';
  else if (param.type === 'PSCredential' && v !== '') {
    occ.secretSource = 'ask';
    occ.userName = v;
  } else throw secretOnCommandLine(param);
}

/** A parameter's value: the inline one, else the next token unless that names a parameter. */
function parameterValue(k: Known, inline: string | undefined, cur: Cursor): string {
  if (inline !== undefined) return inline;
  const n = cur.args[cur.i + 1];
  if (n === undefined || isParameterToken(n) || n === '--') throw missingArgument(k);
  cur.i++;
  return n;
}

/** Splits argv into named occurrences (canonical names) and positional values. */
function tokenize(m: CmdletManifest, args: string[]): { named: Occurrence[]; positional: string[] } {
  const known = knownNames(m);
  const byName = new Map<string, Occurrence>();
  const named: Occurrence[] = [];
  const positional: string[] = [];
  const cur: Cursor = { args, i: 0 };
  for (; cur.i < args.length; cur.i++) {
    const t = args[cur.i]!;
    if (t === '--') {
      positional.push(...args.slice(cur.i + 1));
      break;
    }
    if (!isParameterToken(t)) {
      positional.push(t);
      continue;
    }
    const { k, negated, inline } = parameterToken(m, known, t);
    const occ = occurrenceOf(byName, named, k);
    if (k.type === 'Switch') occ.values.push(switchValue(k, negated, inline));
    else if (negated) occ.values.push('false');
    else if (k.param?.secret) bindSecret(known, k.param, inline, cur, occ);
    else occ.values.push(parameterValue(k, inline, cur));
  }
  return { named, positional };
}

type YargsParser = typeof import('yargs-parser');
let parserPromise: Promise<YargsParser> | undefined;
// Loaded on first use: `--help` and unknown-cmdlet paths never pay for it.
function loadParser(): Promise<YargsParser> {
  parserPromise ??= import('yargs-parser').then((mod) => (mod as unknown as { default: YargsParser }).default ?? mod);
  return parserPromise;
}

/**
 * yargs-parser strips a pair of quotes around a `--name=value` value ('"echo hi"' becomes 'echo
 * hi'), which would bind another value than the one typed. Each value goes in behind a character
 * no command-line argument can hold, so that it never starts with a quote, and comes out without it.
 */
const KEEP = '\u0000';

/**
 * Hands the normalised occurrences to yargs-parser, configured from the manifest (types, arrays,
 * booleans), with every value attached by `=` so that values starting with '-' stay values.
 */
async function parseNormalised(
  named: Occurrence[],
  positional: string[],
): Promise<{ values: Map<string, string[]>; positional: string[] }> {
  const parse = await loadParser();
  const plain = named.filter((o) => !o.known.param?.secret);
  const argv = plain.flatMap((o) => o.values.map((v) => `--${o.known.name}=${o.known.type === 'Switch' ? v : KEEP + v}`));
  argv.push('--', ...positional);
  const result = parse.detailed(argv, {
    string: plain.filter((o) => o.known.type !== 'Switch').map((o) => o.known.name),
    boolean: plain.filter((o) => o.known.type === 'Switch').map((o) => o.known.name),
    array: plain.filter((o) => o.known.type === 'String[]').map((o) => o.known.name),
    configuration: {
      'camel-case-expansion': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'boolean-negation': false,
      'duplicate-arguments-array': true,
      'flatten-duplicate-arrays': true,
      'greedy-arrays': false,
      'short-option-groups': false,
      'populate--': false,
      'unknown-options-as-args': true,
    },
  });
  if (result.error) throw usageError(result.error.message, 'InvalidArgument', undefined, `Run 'azsbackup <cmdlet> -?' for its syntax.`);
  const values = new Map<string, string[]>();
  for (const o of plain) {
    const v = result.argv[o.known.name] as unknown;
    values.set(
      o.known.name,
      (Array.isArray(v) ? v : [v]).map((x) => (typeof x === 'string' && x.startsWith(KEEP) ? x.slice(KEEP.length) : String(x))),
    );
  }
  return { values, positional: result.argv._.map((x) => String(x)) };
}

function membership(p: ParameterDef, set: string) {
  return p.sets.find((s) => s.set === set);
}

function positionalSlots(m: CmdletManifest, set: string, namedParams: Set<string>): ParameterDef[] {
  return m.parameters
    .filter((p) => membership(p, set)?.position !== undefined && !namedParams.has(p.name))
    .sort((a, b) => membership(a, set)!.position! - membership(b, set)!.position!);
}

function missingMandatory(m: CmdletManifest, set: string, bound: Set<string>): ParameterDef[] {
  // Secrets are read later (stdin, environment, prompt); secrets.ts reports those it cannot get.
  return m.parameters.filter((p) => !p.secret && membership(p, set)?.mandatory && !bound.has(p.name));
}

/** Picks the parameter set as PowerShell does: consistent with the named parameters, then positionals, then the default. */
function resolveSet(m: CmdletManifest, namedParams: ParameterDef[], positional: string[]): string {
  const namedSet = new Set(namedParams.map((p) => p.name));
  let candidates = m.parameterSets.filter((s) => namedParams.every((p) => membership(p, s)));
  if (candidates.length === 0) {
    const detail = namedParams
      .filter((p) => p.sets.length < m.parameterSets.length)
      .map((p) => `-${p.name} (${p.sets.map((s) => s.set).join(', ')})`)
      .join(', ');
    throw usageError(
      `Parameter set cannot be resolved using the specified named parameters: ${detail} cannot be used together.`,
      'AmbiguousParameterSet',
      undefined,
      `Use parameters of one parameter set only; run 'azsbackup ${m.name} -?' to see the sets.`,
    );
  }
  if (positional.length) {
    const fitting = candidates.filter((s) => positionalSlots(m, s, namedSet).length >= positional.length);
    if (fitting.length === 0) {
      const most = Math.max(...candidates.map((s) => positionalSlots(m, s, namedSet).length));
      throw usageError(
        `A positional parameter cannot be found that accepts argument '${quoted(positional[most]!)}'.`,
        'PositionalParameterNotFound',
        positional[most],
        `Name the parameter this value is for (-Name value); run 'azsbackup ${m.name} -?' to list them.`,
      );
    }
    candidates = fitting;
  }
  if (candidates.length === 1) return candidates[0]!;
  if (candidates.includes(m.defaultParameterSet)) return m.defaultParameterSet;
  const complete = candidates.filter((s) => {
    const bound = new Set([
      ...namedSet,
      ...positionalSlots(m, s, namedSet)
        .slice(0, positional.length)
        .map((p) => p.name),
    ]);
    return missingMandatory(m, s, bound).length === 0;
  });
  if (complete.length === 1) return complete[0]!;
  throw usageError(
    `Parameter set cannot be resolved using the specified named parameters. One or more parameters issued cannot be used together or an insufficient number of parameters were provided (possible sets: ${candidates.join(', ')}).`,
    'AmbiguousParameterSet',
    undefined,
    `Give a parameter that belongs to only one of ${candidates.join(', ')}; run 'azsbackup ${m.name} -?' to see the sets.`,
  );
}

function commonValue<T extends string>(name: string, raw: string, allowed: readonly T[]): T {
  const v = allowed.find((a) => a === raw.toLowerCase());
  if (v === undefined) {
    throw usageError(
      `Cannot validate argument on parameter '${name}'. The argument "${quoted(raw)}" does not belong to the set "${allowed.join(',')}".`,
      'ParameterArgumentValidationError',
      name,
      `Give --${name.toLowerCase()} ${allowed.join('|')}.`,
    );
  }
  return v;
}

/** Sets the common parameters' fields of `result`; returns the manifest parameters named. */
function bindCommon(named: Occurrence[], values: Map<string, string[]>, result: CommandLine): ParameterDef[] {
  const namedParams: ParameterDef[] = [];
  for (const o of named) {
    const last = (values.get(o.known.name) ?? []).at(-1)!;
    switch (o.known.common) {
      case 'Output':
        result.output = commonValue('Output', last, outputFormats);
        continue;
      case 'Progress':
        result.progress = commonValue('Progress', last, ['json', 'none'] as const);
        continue;
      case 'Dialect':
        result.dialect = commonValue('Dialect', last, ['cli', 'powershell'] as const);
        continue;
      case 'WhatIf':
      case 'Confirm':
      case 'Verbose':
      case 'Debug':
        result[commonSwitches[o.known.common]] = last === 'true';
        continue;
      case undefined:
        namedParams.push(o.known.param!);
    }
  }
  return namedParams;
}

/**
 * The parameter set. A secret supplied by AZSBACKUP_<NAME> counts as given when it selects a
 * parameter set (`AZSBACKUP_ENCRYPTIONKEY=… azsbackup Restore-AzsBackup -Name …` means the Key
 * set), unless the parameters on the command line point elsewhere.
 */
function chooseSet(m: CmdletManifest, namedParams: ParameterDef[], positional: string[], env: Record<string, string | undefined>): string {
  const fromEnv = m.parameters.filter(
    (p) => p.type === 'SecureString' && env[`AZSBACKUP_${p.name.toUpperCase()}`] !== undefined && !namedParams.includes(p),
  );
  try {
    return resolveSet(m, [...namedParams, ...fromEnv], positional);
  } catch {
    return resolveSet(m, namedParams, positional);
  }
}

/** The raw values of each parameter, named or by position; secrets go to `result.secrets` instead. */
function rawValues(
  named: Occurrence[],
  values: Map<string, string[]>,
  positional: string[],
  slots: ParameterDef[],
  result: CommandLine,
): Map<string, string[]> {
  const rawByParam = new Map<string, string[]>();
  for (const o of named) {
    if (!o.known.param) continue;
    if (o.known.param.secret) {
      result.secrets.push({
        parameter: o.known.param,
        source: o.secretSource!,
        ...(o.userName !== undefined ? { userName: o.userName } : {}),
      });
    } else {
      rawByParam.set(o.known.name, values.get(o.known.name) ?? []);
    }
  }
  positional.forEach((v, i) => {
    const p = slots[i]!;
    if (p.secret) {
      if (v === '-') result.secrets.push({ parameter: p, source: 'stdin' });
      else if (p.type === 'PSCredential' && v !== '') result.secrets.push({ parameter: p, source: 'ask', userName: v });
      else throw secretOnCommandLine(p);
    } else rawByParam.set(p.name, [v]);
  });
  return rawByParam;
}

function assertMandatoryGiven(m: CmdletManifest, set: string, bound: Set<string>): void {
  const missing = missingMandatory(m, set, bound);
  if (missing.length) {
    const give = (s: string, params: ParameterDef[]) =>
      `${params.map((p) => `-${p.name} <${p.type}>`).join(' ')}${m.parameterSets.length > 1 ? ` (parameter set ${s})` : ''}`;
    // The set was the default among others the command line fits as well (Restore-AzsBackup -Name
    // alone): name what each of them needs too, not only the default's (a backup made with a key
    // needs -EncryptionKey, not a .pfx).
    const others = m.parameterSets
      .filter((s) => s !== set && [...bound].every((name) => m.parameters.some((p) => p.name === name && membership(p, s))))
      .map((s) => ({ s, needs: m.parameters.filter((p) => membership(p, s)?.mandatory && !bound.has(p.name)) }))
      .filter((o) => o.needs.length > 0)
      .map((o) => give(o.s, o.needs));
    throw usageError(
      `Cannot process command because of one or more missing mandatory parameters: ${missing.map((p) => p.name).join(' ')}.`,
      'MissingMandatoryParameter',
      missing.map((p) => p.name),
      `Give ${[give(set, missing), ...others].join(', or ')}.`,
    );
  }
}

/**
 * A path parameter's values, each resolved. A list given once (`-EncryptionCertPath a.cer,b.cer`)
 * is cut at its commas first, as convertValue cuts it, so that each element resolves, not the whole.
 */
function resolvedPaths(p: ParameterDef, raws: string[]): string[] {
  const items = p.type === 'String[]' && raws.length === 1 && raws[0]!.trim() !== '' ? raws[0]!.split(',').map((s) => s.trim()) : raws;
  return items.map((r) => (r === '' || keptAsGiven.test(r) ? r : resolvePath(r)));
}

/** Each given parameter's raw values converted to its type, in the manifest's order. */
function convertParams(m: CmdletManifest, set: string, rawByParam: Map<string, string[]>, params: CommandLine['params']): void {
  for (const p of m.parameters) {
    const raws = rawByParam.get(p.name);
    if (raws === undefined) continue;
    if (p.type === 'Switch') {
      params[p.name] = raws[raws.length - 1] === 'true';
      continue;
    }
    // An empty path would name the current folder (or, for a list, nothing at all); an empty
    // -RoleName, all roles: an unset shell variable must not stand for either.
    if (raws.every((r) => r === '') && (membership(p, set)?.mandatory || p.validation.notEmpty || isPathParameter(p))) {
      throw usageError(
        `Cannot bind argument to parameter '${p.name}' because it is an empty string.`,
        'ParameterArgumentValidationErrorEmptyStringNotAllowed',
        p.name,
        `Give -${p.name} a non-empty value${isPathParameter(p) ? ', or leave it out' : ''}.`,
      );
    }
    // Relative paths resolve against the current folder here, as the module resolves them against
    // PowerShell's location, so every cmdlet stores and checks the same absolute path.
    const given = isPathParameter(p) ? resolvedPaths(p, raws) : raws;
    params[p.name] = convertValue(p, given);
  }
}

/** Parses the arguments after the cmdlet name. Throws AzsError (exit 2) for every usage mistake. */
export async function parseCommandLine(
  m: CmdletManifest,
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<CommandLine> {
  const { named, positional: rawPositional } = tokenize(m, args);
  const { values, positional } = await parseNormalised(named, rawPositional);

  const result: CommandLine = {
    parameterSetName: '',
    params: {},
    secrets: [],
    whatIf: false,
    confirm: undefined,
    output: undefined,
    progress: undefined,
    dialect: 'cli',
    verbose: false,
    debug: false,
  };
  const namedParams = bindCommon(named, values, result);
  const set = chooseSet(m, namedParams, positional, env);
  result.parameterSetName = set;
  const slots = positionalSlots(m, set, new Set(namedParams.map((p) => p.name)));
  const rawByParam = rawValues(named, values, positional, slots, result);
  assertMandatoryGiven(m, set, new Set([...rawByParam.keys(), ...result.secrets.map((s) => s.parameter.name)]));
  convertParams(m, set, rawByParam, result.params);
  return result;
}
