/**
 * Reads manifests/*.xml into the model of model.ts and refuses anything malformed, naming the file,
 * the element and the reason. This module parses XML, so it is for the build, the tests and the
 * module generator; the host at run time reads the compiled JSON through compiled.ts instead.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { AzsError } from '../errors.js';
import {
  parameterTypes,
  propertyTypes,
  type CmdletAlias,
  type CmdletManifest,
  type ConfirmImpact,
  type Example,
  type ManifestSet,
  type ParameterDef,
  type ParameterSetMembership,
  type ParameterType,
  type PropertyDef,
  type PropertyType,
  type TypeDef,
  type TypeRegistry,
  type Validation,
} from './model.js';
import { approvedVerb, approvedVerbs } from './verbs.js';
import { compiledFormatVersion, type CompiledManifests } from './compiled.js';

/** The set a parameter belongs to when a cmdlet declares no parameter sets, as PowerShell names it. */
export const allParameterSets = '__AllParameterSets';

const confirmImpacts: readonly ConfirmImpact[] = ['None', 'Low', 'Medium', 'High'];
const secretTypes: readonly ParameterType[] = ['SecureString', 'PSCredential'];

const repeatable = new Set(['ParameterSet', 'Parameter', 'Set', 'Example', 'Type', 'Property']);

function parser(): XMLParser {
  return new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '',
    attributesGroupName: '$',
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    processEntities: true,
    htmlEntities: false,
    isArray: (name) => repeatable.has(name),
  });
}

/** Carries the file name so every error names it. */
class Reader {
  constructor(readonly file: string) {}

  fail(element: string, reason: string): never {
    throw new AzsError(`Invalid manifest ${this.file}: ${element}: ${reason}`, {
      errorId: 'InvalidManifest',
      category: 'InvalidData',
      exitCode: 1,
      targetObject: this.file,
      recommendedAction: `Correct ${element} in ${basename(this.file)} (see docs/MANIFESTS.md) and build again.`,
    });
  }

  parse(text: string, root: string): Record<string, unknown> {
    const valid = XMLValidator.validate(text);
    if (valid !== true) {
      this.fail(`line ${valid.err.line}, column ${valid.err.col}`, `XML syntax error: ${valid.err.msg}`);
    }
    const doc = parser().parse(text) as Record<string, unknown>;
    const top = Object.keys(doc).filter((k) => !k.startsWith('?'));
    if (top.length !== 1 || top[0] !== root) {
      this.fail(top.join(',') || '(document)', `the root element must be <${root}>`);
    }
    const node = doc[root];
    return typeof node === 'object' && node !== null ? (node as Record<string, unknown>) : {};
  }
}

function attrs(node: unknown): Record<string, string> {
  if (typeof node === 'object' && node !== null && '$' in node) return (node as { $: Record<string, string> }).$;
  return {};
}

function text(node: unknown): string | undefined {
  if (node === undefined) return undefined;
  if (typeof node === 'string') return node;
  if (typeof node === 'object' && node !== null && '#text' in node) return String((node as { '#text': unknown })['#text']);
  return '';
}

/** Attribute and child names a given element may carry; anything else is most likely a typo. */
function checkKnown(r: Reader, element: string, node: unknown, allowedAttrs: string[], allowedChildren: string[]): void {
  for (const a of Object.keys(attrs(node))) {
    if (!allowedAttrs.includes(a)) r.fail(element, `unknown attribute ${a} (allowed: ${allowedAttrs.join(', ') || 'none'})`);
  }
  if (typeof node === 'object' && node !== null) {
    for (const c of Object.keys(node)) {
      if (c === '$' || c === '#text') continue;
      if (!allowedChildren.includes(c)) r.fail(element, `unknown element <${c}> (allowed: ${allowedChildren.join(', ') || 'none'})`);
    }
  }
}

function single(r: Reader, element: string, parent: Record<string, unknown>, name: string): unknown {
  const v = parent[name];
  if (Array.isArray(v)) r.fail(`${element}/${name}`, 'appears more than once');
  return v;
}

function list(node: unknown, name: string): unknown[] {
  if (typeof node !== 'object' || node === null) return [];
  const v = (node as Record<string, unknown>)[name];
  return Array.isArray(v) ? v : v === undefined ? [] : [v];
}

function bool(r: Reader, element: string, name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return r.fail(element, `${name}="${value}" must be true or false`);
}

function int(r: Reader, element: string, name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) r.fail(element, `${name}="${value}" must be a non-negative integer`);
  return Number(value);
}

function num(r: Reader, element: string, name: string, value: string | undefined): number {
  if (value === undefined || value.trim() === '' || !Number.isFinite(Number(value))) {
    r.fail(element, `${name}="${value ?? ''}" must be a number`);
  }
  return Number(value);
}

/** Help prose: paragraphs separated by blank lines, each paragraph's layout whitespace collapsed. */
function prose(value: string): string {
  return value
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s+/g, ' ').trim())
    .filter((p) => p !== '')
    .join('\n\n');
}

/** Example code keeps its lines but loses the indentation the XML layout gave it. */
function dedent(value: string): string {
  const lines = value.replace(/\r\n/g, '\n').split('\n');
  const indents = lines
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => /^\s*/.exec(l)![0].length);
  const cut = indents.length ? Math.min(...indents) : 0;
  return [lines[0]!.trim(), ...lines.slice(1).map((l) => l.slice(cut).trimEnd())].join('\n').trim();
}

function csv(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

const pascal = /^[A-Z][A-Za-z0-9]*$/;
// Singular words that end in "s"; anything else ending in a lone "s" reads as a plural.
const singularEndingInS = new Set([
  'status',
  'alias',
  'process',
  'access',
  'address',
  'progress',
  'class',
  'bus',
  'analysis',
  'canvas',
  'basis',
  'diagnosis',
  'os',
]);

function pluralReason(noun: string): string | undefined {
  const words = noun.match(/[A-Z][a-z0-9]*/g) ?? [noun];
  const last = words[words.length - 1]!.toLowerCase();
  if (singularEndingInS.has(last)) return undefined;
  if (/ies$/.test(last) || (/s$/.test(last) && !/(ss|us|is)$/.test(last))) {
    return `Noun "${noun}" looks plural; PowerShell nouns are singular (e.g. Get-InfrastructureBackup, not Get-InfrastructureBackups)`;
  }
  return undefined;
}

function parseValidation(r: Reader, element: string, node: Record<string, unknown>, type: ParameterType): Validation {
  const v: Validation = {};
  const setNode = single(r, element, node, 'ValidateSet');
  if (setNode !== undefined) {
    const values = csv(text(setNode));
    if (values.length === 0) r.fail(`${element}/ValidateSet`, 'lists no values');
    const seen = new Set<string>();
    for (const value of values) {
      if (seen.has(value.toLowerCase())) r.fail(`${element}/ValidateSet`, `value "${value}" is listed twice`);
      seen.add(value.toLowerCase());
    }
    v.set = values;
  }
  const rangeNode = single(r, element, node, 'ValidateRange');
  if (rangeNode !== undefined) {
    const el = `${element}/ValidateRange`;
    checkKnown(r, el, rangeNode, ['Min', 'Max'], []);
    if (type !== 'Int32' && type !== 'Int64') r.fail(el, `applies to Int32 or Int64 parameters, not ${type}`);
    const a = attrs(rangeNode);
    const min = num(r, el, 'Min', a.Min);
    const max = num(r, el, 'Max', a.Max);
    if (min > max) r.fail(el, `Min ${min} is greater than Max ${max}`);
    v.range = { min, max };
  }
  const patternNode = single(r, element, node, 'ValidatePattern');
  if (patternNode !== undefined) {
    const el = `${element}/ValidatePattern`;
    const pattern = text(patternNode) ?? '';
    if (pattern === '') r.fail(el, 'is empty');
    try {
      new RegExp(pattern, 'i');
    } catch (e) {
      r.fail(el, `"${pattern}" is not a valid regular expression: ${(e as Error).message}`);
    }
    v.pattern = pattern;
  }
  const lengthNode = single(r, element, node, 'ValidateLength');
  if (lengthNode !== undefined) {
    const el = `${element}/ValidateLength`;
    checkKnown(r, el, lengthNode, ['Min', 'Max'], []);
    const a = attrs(lengthNode);
    const min = int(r, el, 'Min', a.Min) ?? r.fail(el, 'Min is required');
    const max = int(r, el, 'Max', a.Max) ?? r.fail(el, 'Max is required');
    if (min > max) r.fail(el, `Min ${min} is greater than Max ${max}`);
    v.length = { min, max };
  }
  if (single(r, element, node, 'ValidateNotNullOrEmpty') !== undefined) {
    if (type !== 'String' && type !== 'String[]')
      r.fail(`${element}/ValidateNotNullOrEmpty`, `applies to String or String[] parameters, not ${type}`);
    v.notEmpty = true;
  }
  if (v.set && !['String', 'String[]', 'Int32', 'Int64'].includes(type)) {
    r.fail(`${element}/ValidateSet`, `applies to String, String[], Int32 or Int64 parameters, not ${type}`);
  }
  if (v.set && (type === 'Int32' || type === 'Int64') && v.set.some((x) => !/^[+-]?\d+$/.test(x))) {
    r.fail(`${element}/ValidateSet`, `lists a value that is not an integer, for a ${type} parameter`);
  }
  if ((v.pattern || v.length) && !['String', 'String[]', 'SecureString'].includes(type)) {
    r.fail(element, `ValidatePattern and ValidateLength apply to String, String[] or SecureString parameters, not ${type}`);
  }
  return v;
}

/** The parameter sets a parameter belongs to, with its defaults applied where a <Set> says nothing. */
function parameterSetMembership(
  r: Reader,
  element: string,
  a: Record<string, string | undefined>,
  setNodes: unknown[],
  sets: string[],
): ParameterSetMembership[] {
  const defaults = {
    mandatory: bool(r, element, 'Mandatory', a.Mandatory, false),
    position: int(r, element, 'Position', a.Position),
    pipeline: bool(r, element, 'ValueFromPipelineByPropertyName', a.ValueFromPipelineByPropertyName, false),
  };
  const membership: ParameterSetMembership[] = [];
  if (setNodes.length === 0) {
    for (const set of sets) {
      membership.push({
        set,
        mandatory: defaults.mandatory,
        position: defaults.position,
        valueFromPipelineByPropertyName: defaults.pipeline,
      });
    }
  } else {
    for (const s of setNodes) {
      const sa = attrs(s);
      const setName = sa.Name ?? r.fail(`${element}/Set`, 'has no Name');
      const el = `${element}/Set[Name=${setName}]`;
      checkKnown(r, el, s, ['Name', 'Mandatory', 'Position', 'ValueFromPipelineByPropertyName'], []);
      if (!sets.includes(setName))
        r.fail(el, `names parameter set "${setName}", which <ParameterSets> does not declare (declared: ${sets.join(', ')})`);
      if (membership.some((m) => m.set === setName)) r.fail(el, 'lists the same set twice');
      membership.push({
        set: setName,
        mandatory: bool(r, el, 'Mandatory', sa.Mandatory, defaults.mandatory),
        position: int(r, el, 'Position', sa.Position) ?? defaults.position,
        valueFromPipelineByPropertyName: bool(
          r,
          el,
          'ValueFromPipelineByPropertyName',
          sa.ValueFromPipelineByPropertyName,
          defaults.pipeline,
        ),
      });
    }
  }
  return membership;
}
function parseParameter(r: Reader, node: unknown, sets: string[]): ParameterDef {
  const a = attrs(node);
  const name = a.Name ?? r.fail('Parameters/Parameter', 'a parameter has no Name');
  const element = `Parameter[Name=${name}]`;
  if (!pascal.test(name)) r.fail(element, `Name "${name}" must be PascalCase letters and digits`);
  checkKnown(
    r,
    element,
    node,
    ['Name', 'Type', 'Mandatory', 'Position', 'Aliases', 'ValueFromPipelineByPropertyName', 'Secret', 'CompleteFrom'],
    ['Set', 'Help', 'ValidateSet', 'ValidateRange', 'ValidatePattern', 'ValidateLength', 'ValidateNotNullOrEmpty'],
  );
  const type = a.Type as ParameterType;
  if (!a.Type) r.fail(element, 'Type is required');
  if (!parameterTypes.includes(type)) r.fail(element, `unknown Type "${a.Type}" (known: ${parameterTypes.join(', ')})`);
  const isSecretType = secretTypes.includes(type);
  const secret = bool(r, element, 'Secret', a.Secret, isSecretType);
  if (secret && !isSecretType) r.fail(element, `Secret="true" needs Type SecureString or PSCredential, not ${type}`);
  if (!secret && isSecretType) r.fail(element, `a ${type} parameter is always a secret; remove Secret="false"`);
  const obj = node as Record<string, unknown>;
  const help = prose(text(single(r, element, obj, 'Help')) ?? '');
  if (help === '') r.fail(`${element}/Help`, 'is missing or empty: every parameter needs help text');

  const setNodes = list(node, 'Set');
  const membership = parameterSetMembership(r, element, a, setNodes, sets);
  for (const m of membership) {
    if (m.position === undefined) delete m.position;
  }
  if (type === 'Switch') {
    // A mandatory switch carries no information, except as the switch that selects a parameter set
    // (New-EncryptionKey -Certificate): then it is mandatory in that set and absent from the others.
    const selectsSet = setNodes.length > 0 && membership.length < sets.length;
    if (membership.some((m) => m.mandatory) && !selectsSet) {
      r.fail(
        element,
        'a Switch cannot be Mandatory (a switch that must always be given carries no information), unless it selects a parameter set: ' +
          'declare it in that <Set Name=... Mandatory="true"/> only',
      );
    }
    if (membership.some((m) => m.position !== undefined)) r.fail(element, 'a Switch cannot have a Position');
  }
  const aliases = csv(a.Aliases);
  for (const alias of aliases) {
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(alias)) r.fail(element, `alias "${alias}" must be letters and digits`);
  }
  const completeFrom = a.CompleteFrom;
  if (completeFrom !== undefined && !/^[A-Z][A-Za-z]*-[A-Z][A-Za-z0-9]*\.[A-Z][A-Za-z0-9]*$/.test(completeFrom))
    r.fail(element, `CompleteFrom "${completeFrom}" must be Verb-Noun.Property`);
  return {
    name,
    type,
    aliases,
    secret,
    sets: membership,
    validation: parseValidation(r, element, obj, type),
    help,
    ...(completeFrom ? { completeFrom } : {}),
  };
}

function parseAliases(r: Reader, root: Record<string, unknown>, outputType: string | undefined, types?: TypeRegistry): CmdletAlias[] {
  const container = single(r, 'Cmdlet', root, 'Aliases');
  if (container === undefined) return [];
  checkKnown(r, 'Aliases', container, [], ['Alias']);
  return list(container, 'Alias').map((node, i) => {
    const el = `Aliases/Alias[${i + 1}]`;
    checkKnown(r, el, node, ['Name', 'ExpandProperty'], []);
    const a = attrs(node);
    const name = a.Name ?? r.fail(el, 'has no Name');
    if (!/^[A-Z][A-Za-z]*-[A-Z][A-Za-z0-9]*$/.test(name)) r.fail(el, `Name "${name}" must be Verb-Noun`);
    const expand = a.ExpandProperty;
    if (expand !== undefined) {
      const type = outputType === undefined ? undefined : types?.get(outputType);
      if (!outputType || (types && !type?.properties.some((p) => p.name === expand)))
        r.fail(el, `ExpandProperty "${expand}" is not a property of the output type`);
    }
    return { name, ...(expand !== undefined ? { expandProperty: expand } : {}) };
  });
}

function parseExamples(r: Reader, root: Record<string, unknown>): Example[] {
  const container = single(r, 'Cmdlet', root, 'Examples');
  if (container === undefined) return [];
  checkKnown(r, 'Examples', container, [], ['Example']);
  return list(container, 'Example').map((e, i) => {
    const el = `Examples/Example[${i + 1}]`;
    checkKnown(r, el, e, ['Shell'], ['Title', 'Code', 'Remarks']);
    const obj = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
    const code = dedent(text(single(r, el, obj, 'Code')) ?? '');
    if (code === '') r.fail(`${el}/Code`, 'is missing or empty');
    const shell = (attrs(e).Shell ?? 'Both') as Example['shell'];
    if (!['Both', 'Cli', 'PowerShell'].includes(shell)) r.fail(el, `Shell "${shell}" must be Both, Cli or PowerShell`);
    // An example that runs the azsbackup program is the command line's, never Get-Help's.
    if (shell !== 'Cli' && /(^|[\s;|(])azsbackup\s/.test(code)) r.fail(el, 'runs azsbackup, the command line: mark it Shell="Cli"');
    return {
      shell,
      title: prose(text(single(r, el, obj, 'Title')) ?? ''),
      code,
      remarks: prose(text(single(r, el, obj, 'Remarks')) ?? ''),
    };
  });
}

/**
 * Reads one cmdlet manifest. With `types`, also checks that OutputType is declared there
 * (loadManifestSet always passes them).
 */
export function loadManifest(file: string, types?: TypeRegistry): CmdletManifest {
  return parseManifest(new Reader(file), readManifestFile(file), types);
}

/** The text of a manifest file; an unreadable one is an InvalidManifest error naming it. */
function readManifestFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    return new Reader(file).fail('(file)', `cannot be read: ${(e as Error).message}`);
  }
}

/** The same as loadManifest, from text already in memory (tests, generators). */
export function parseManifestText(file: string, source: string, types?: TypeRegistry): CmdletManifest {
  return parseManifest(new Reader(file), source, types);
}

/** Verb-Noun: an approved verb, a singular PascalCase noun, and the file named after them. */
function cmdletName(r: Reader, a: Record<string, string>): { name: string; verb: string; noun: string } {
  const verb = a.Verb ?? r.fail('Cmdlet', 'Verb is required');
  const canonicalVerb = approvedVerb(verb);
  if (!canonicalVerb)
    r.fail('Cmdlet', `Verb "${verb}" is not an approved PowerShell verb (Get-Verb); e.g. ${approvedVerbs.slice(0, 8).join(', ')}, ...`);
  if (canonicalVerb !== verb) r.fail('Cmdlet', `Verb "${verb}" must be written "${canonicalVerb}"`);
  const noun = a.Noun ?? r.fail('Cmdlet', 'Noun is required');
  if (!pascal.test(noun)) r.fail('Cmdlet', `Noun "${noun}" must be PascalCase letters and digits, starting with a capital`);
  const plural = pluralReason(noun);
  if (plural) r.fail('Cmdlet', plural);
  const name = `${verb}-${noun}`;
  const fileBase = basename(r.file).replace(/\.xml$/i, '');
  if (/\.xml$/i.test(r.file) && fileBase !== name)
    r.fail('Cmdlet', `declares ${name} but the file is named ${basename(r.file)}; name it ${name}.xml`);
  return { name, verb, noun };
}

/** The declared parameter sets (or the one implicit set), the default one, and each set's Output. */
function parameterSetsOf(
  r: Reader,
  root: Record<string, unknown>,
  a: Record<string, string>,
): { parameterSets: string[]; defaultParameterSet: string; setOutput: Map<string, 'List' | 'Single'> } {
  const setsNode = single(r, 'Cmdlet', root, 'ParameterSets');
  if (setsNode !== undefined) checkKnown(r, 'ParameterSets', setsNode, [], ['ParameterSet']);
  const setOutput = new Map<string, 'List' | 'Single'>();
  const declaredSets = list(setsNode, 'ParameterSet').map((s, i) => {
    const el = `ParameterSets/ParameterSet[${i + 1}]`;
    checkKnown(r, el, s, ['Name', 'Output'], []);
    const n = attrs(s).Name ?? r.fail(el, 'has no Name');
    const o = attrs(s).Output;
    if (o !== undefined && o !== 'List' && o !== 'Single') r.fail(el, `Output "${o}" must be List or Single`);
    if (o !== undefined) setOutput.set(n, o);
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(n)) r.fail(el, `Name "${n}" must be letters, digits and _`);
    return n;
  });
  for (const [i, s] of declaredSets.entries()) {
    if (declaredSets.findIndex((x) => x.toLowerCase() === s.toLowerCase()) !== i) r.fail(`ParameterSet[Name=${s}]`, 'is declared twice');
  }
  const parameterSets = declaredSets.length ? declaredSets : [allParameterSets];
  let defaultParameterSet: string;
  if (a.DefaultParameterSet === undefined) {
    if (declaredSets.length > 1)
      r.fail('Cmdlet', `DefaultParameterSet is required when there are several parameter sets (${declaredSets.join(', ')})`);
    defaultParameterSet = parameterSets[0]!;
  } else {
    if (!parameterSets.includes(a.DefaultParameterSet)) {
      r.fail(
        'Cmdlet',
        `DefaultParameterSet "${a.DefaultParameterSet}" is not a declared parameter set (declared: ${declaredSets.join(', ') || 'none'})`,
      );
    }
    defaultParameterSet = a.DefaultParameterSet;
  }
  return { parameterSets, defaultParameterSet, setOutput };
}

function parseManifest(r: Reader, source: string, types?: TypeRegistry): CmdletManifest {
  const root = r.parse(source, 'Cmdlet');
  checkKnown(
    r,
    'Cmdlet',
    root,
    [
      'Verb',
      'Noun',
      'DefaultParameterSet',
      'SupportsShouldProcess',
      'ConfirmImpact',
      'OutputType',
      'ReportsProgress',
      'Output',
      'SingleInput',
    ],
    ['Synopsis', 'Description', 'ParameterSets', 'Parameters', 'Examples', 'Aliases'],
  );
  const a = attrs(root);

  const { name, verb, noun } = cmdletName(r, a);

  const synopsis = prose(text(single(r, 'Cmdlet', root, 'Synopsis')) ?? '');
  if (synopsis === '') r.fail('Cmdlet/Synopsis', 'is missing or empty');
  const description = prose(text(single(r, 'Cmdlet', root, 'Description')) ?? '');

  const { parameterSets, defaultParameterSet, setOutput } = parameterSetsOf(r, root, a);

  const supportsShouldProcess = bool(r, 'Cmdlet', 'SupportsShouldProcess', a.SupportsShouldProcess, false);
  const confirmImpact = (a.ConfirmImpact ?? 'Medium') as ConfirmImpact;
  if (!confirmImpacts.includes(confirmImpact))
    r.fail('Cmdlet', `ConfirmImpact "${a.ConfirmImpact}" must be one of ${confirmImpacts.join(', ')}`);
  if (a.ConfirmImpact !== undefined && !supportsShouldProcess) r.fail('Cmdlet', 'ConfirmImpact needs SupportsShouldProcess="true"');
  const reportsProgress = bool(r, 'Cmdlet', 'ReportsProgress', a.ReportsProgress, false);

  const outputType = a.OutputType;
  if (outputType !== undefined && types && !types.has(outputType)) {
    r.fail('Cmdlet', `OutputType "${outputType}" is not declared in Types.xml (declared: ${[...types.keys()].join(', ')})`);
  }

  const output = (a.Output ?? 'Single') as CmdletManifest['output'];
  if (output !== 'List' && output !== 'Single') r.fail('Cmdlet', `Output "${a.Output}" must be List or Single`);
  if (a.Output !== undefined && outputType === undefined) r.fail('Cmdlet', 'Output needs an OutputType');
  const singleInput = bool(r, 'Cmdlet', 'SingleInput', a.SingleInput, false);

  const paramsNode = single(r, 'Cmdlet', root, 'Parameters');
  if (paramsNode !== undefined) checkKnown(r, 'Parameters', paramsNode, [], ['Parameter']);
  const parameters = list(paramsNode, 'Parameter').map((p) => parseParameter(r, p, parameterSets));
  checkParameterNames(r, parameters);
  checkPositions(r, parameters, parameterSets);
  if (singleInput && !parameters.some((p) => p.name === 'Force' && p.type === 'Switch'))
    r.fail('Cmdlet', 'SingleInput="true" needs a -Force switch that allows several piped objects');

  return {
    name,
    verb,
    noun,
    file: r.file,
    synopsis,
    description,
    parameterSets,
    defaultParameterSet,
    parameters,
    supportsShouldProcess,
    confirmImpact,
    ...(outputType !== undefined ? { outputType } : {}),
    reportsProgress,
    output,
    ...(setOutput.size ? { setOutput: Object.fromEntries(setOutput) } : {}),
    singleInput,
    aliases: parseAliases(r, root, outputType, types),
    examples: parseExamples(r, root),
  };
}

/** Names the host adds to every cmdlet; a manifest may not declare them. */
const commonParameterNames = ['Output', 'Progress', 'WhatIf', 'Confirm', 'Help'];

function checkParameterNames(r: Reader, parameters: ParameterDef[]): void {
  const owner = new Map<string, string>();
  for (const p of parameters) {
    for (const n of [p.name, ...p.aliases]) {
      const key = n.toLowerCase();
      const element = `Parameter[Name=${p.name}]`;
      const other = owner.get(key);
      if (other !== undefined) {
        r.fail(
          element,
          other === p.name
            ? `"${n}" is given twice (names and aliases are case-insensitive)`
            : `"${n}" is already used by parameter ${other} (names and aliases are case-insensitive)`,
        );
      }
      const common = commonParameterNames.find((c) => c.toLowerCase() === key);
      if (common)
        r.fail(
          element,
          `"${n}" is a common parameter the host adds${common === 'WhatIf' || common === 'Confirm' ? ' with SupportsShouldProcess="true"' : ''}; choose another name`,
        );
      owner.set(key, p.name);
    }
  }
}

function checkPositions(r: Reader, parameters: ParameterDef[], sets: string[]): void {
  for (const set of sets) {
    const taken = new Map<number, string>();
    for (const p of parameters) {
      const m = p.sets.find((s) => s.set === set);
      if (m?.position === undefined) continue;
      const other = taken.get(m.position);
      if (other !== undefined) {
        r.fail(`Parameter[Name=${p.name}]`, `Position ${m.position} in parameter set ${set} is already taken by ${other}`);
      }
      taken.set(m.position, p.name);
    }
  }
}

/** Reads manifests/Types.xml. */
export function loadTypes(file: string): TypeRegistry {
  return parseTypesText(file, readManifestFile(file));
}

export function parseTypesText(file: string, source: string): TypeRegistry {
  const r = new Reader(file);
  const root = r.parse(source, 'Types');
  checkKnown(r, 'Types', root, [], ['Type']);
  const types = new Map<string, TypeDef>();
  for (const [i, t] of list(root, 'Type').entries()) {
    const a = attrs(t);
    const name = a.Name ?? r.fail(`Type[${i + 1}]`, 'has no Name');
    const element = `Type[Name=${name}]`;
    checkKnown(r, element, t, ['Name', 'TableColumns'], ['Property']);
    if (!/^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)+$/.test(name))
      r.fail(element, `Name "${name}" must be a dotted name such as AzsBackup.Backup`);
    if (types.has(name)) r.fail(element, 'is declared twice');
    const properties: PropertyDef[] = list(t, 'Property').map((p, j) => {
      const pa = attrs(p);
      const pname = pa.Name ?? r.fail(`${element}/Property[${j + 1}]`, 'has no Name');
      const el = `${element}/Property[Name=${pname}]`;
      checkKnown(r, el, p, ['Name', 'Type', 'TypeName', 'Secret'], []);
      if (!pascal.test(pname)) r.fail(el, `Name "${pname}" must be PascalCase`);
      const type = pa.Type as PropertyType;
      if (!propertyTypes.includes(type)) r.fail(el, `unknown Type "${pa.Type ?? ''}" (known: ${propertyTypes.join(', ')})`);
      const isObject = type === 'Object' || type === 'Object[]';
      if (isObject && !pa.TypeName) r.fail(el, `a property of Type ${type} needs TypeName naming a declared type`);
      if (!isObject && pa.TypeName) r.fail(el, `TypeName applies only to Object and Object[] properties, not ${type}`);
      const secret = bool(r, el, 'Secret', pa.Secret, false);
      if (secret && type !== 'String') r.fail(el, 'Secret applies only to String properties');
      return { name: pname, type, ...(pa.TypeName ? { typeName: pa.TypeName } : {}), ...(secret ? { secret } : {}) };
    });
    if (properties.length === 0) r.fail(element, 'declares no Property');
    for (const [j, p] of properties.entries()) {
      if (properties.findIndex((q) => q.name.toLowerCase() === p.name.toLowerCase()) !== j)
        r.fail(`${element}/Property[Name=${p.name}]`, 'is declared twice');
    }
    let tableColumns: string[];
    if (a.TableColumns !== undefined) {
      tableColumns = csv(a.TableColumns);
      for (const c of tableColumns) {
        if (!properties.some((p) => p.name === c)) {
          r.fail(
            element,
            `TableColumns names "${c}", which is not a property of ${name} (properties: ${properties.map((p) => p.name).join(', ')})`,
          );
        }
      }
    } else {
      // Without a declared view, a table shows the first few scalar properties, as PowerShell shows at most a handful.
      tableColumns = properties
        .filter((p) => p.type !== 'Object' && p.type !== 'Object[]')
        .slice(0, 5)
        .map((p) => p.name);
    }
    types.set(name, { name, properties, tableColumns });
  }
  for (const t of types.values()) {
    for (const p of t.properties) {
      if (p.typeName !== undefined && !types.has(p.typeName)) {
        r.fail(`Type[Name=${t.name}]/Property[Name=${p.name}]`, `TypeName "${p.typeName}" is not declared in this file`);
      }
    }
  }
  return types;
}

/** Reads a manifests folder: Types.xml and every <Verb-Noun>.xml, cross-checked. */
/** The module's about topic, beside the manifests. */
export const aboutTopicFile = 'about_AzsBackup.help.txt';

export function loadManifestSet(dir: string): ManifestSet {
  const types = loadTypes(join(dir, 'Types.xml'));
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => f.toLowerCase().endsWith('.xml') && f !== 'Types.xml')
      .sort();
  } catch (e) {
    throw new AzsError(`Cannot read the manifests folder ${dir}: ${(e as Error).message}`, {
      errorId: 'InvalidManifest',
      category: 'InvalidData',
      exitCode: 1,
      targetObject: dir,
    });
  }
  const cmdlets = files.map((f) => loadManifest(join(dir, f), types));
  const seen = new Map<string, string>();
  for (const c of cmdlets) {
    const other = seen.get(c.name.toLowerCase());
    if (other) new Reader(c.file).fail('Cmdlet', `${c.name} is also declared by ${other}`);
    seen.set(c.name.toLowerCase(), c.file);
  }
  const aboutFile = join(dir, aboutTopicFile);
  return { cmdlets, types, ...(existsSync(aboutFile) ? { about: readFileSync(aboutFile, 'utf8') } : {}) };
}

/**
 * Validates a manifests folder and writes it as one JSON file the host reads at start-up without
 * parsing XML. Returns what it wrote.
 */
export function compileManifests(dir: string, outFile: string): CompiledManifests {
  const set = loadManifestSet(dir);
  const compiled: CompiledManifests = {
    formatVersion: compiledFormatVersion,
    cmdlets: Object.fromEntries(set.cmdlets.map((c) => [c.name.toLowerCase(), { ...c, file: basename(c.file) }])),
    types: Object.fromEntries(set.types),
  };
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify(compiled));
  return compiled;
}
