import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CmdletManifest, ParameterDef, ParameterType } from './model.js';

/**
 * The TypeScript shape of each cmdlet's bound parameters, written from its manifest at build time
 * (cmdlets/generated/parameters.d.ts), so a cmdlet reads `params.Path` as a string without a cast
 * and a manifest change that breaks a cmdlet breaks the typecheck.
 */

/** How the host binds each manifest type (src/host/cmdlet.ts says the same in words). */
const TS_TYPE: Record<ParameterType, string> = {
  String: 'string',
  'String[]': 'string[]',
  Int32: 'number',
  Int64: 'number',
  Boolean: 'boolean',
  Switch: 'boolean',
  DateTime: 'Date',
  Guid: 'string',
  SecureString: 'string',
  PSCredential: 'Credential',
};

/**
 * A ValidateSet narrows the type to its members: the host binds a string as the set's own
 * spelling (src/host/convert.ts, validateText) and checks a number against the set.
 */
function typeOf(p: ParameterDef): string {
  const members = p.validation.set;
  if (!members) return TS_TYPE[p.type];
  const literals = members
    .map((m) => (p.type === 'Int32' || p.type === 'Int64' ? String(Number(m)) : `'${m.replace(/['\\]/g, '\\$&')}'`))
    .join(' | ');
  if (p.type === 'String[]') return `(${literals})[]`;
  if (p.type === 'String' || p.type === 'Int32' || p.type === 'Int64') return literals;
  return TS_TYPE[p.type];
}

/** Present in every call: mandatory in each of the cmdlet's parameter sets. */
function alwaysBound(cmdlet: CmdletManifest, p: ParameterDef): boolean {
  const sets = cmdlet.parameterSets.length ? cmdlet.parameterSets : ['__AllParameterSets'];
  return sets.every((set) => p.sets.some((m) => (m.set === set || m.set === '__AllParameterSets') && m.mandatory));
}

/** `Set-BackupShare` → `SetBackupShareParameters`. */
export function parameterTypeName(cmdlet: CmdletManifest): string {
  return `${cmdlet.name.replace('-', '')}Parameters`;
}

export function renderParameterTypes(cmdlets: readonly CmdletManifest[]): string {
  const interfaces = cmdlets.map((c) => {
    const fields = c.parameters.map((p) => `  ${p.name}${alwaysBound(c, p) ? '' : '?'}: ${typeOf(p)};`);
    const doc = `/** The bound parameters of ${c.name} (manifests/${c.name}.xml). */\n`;
    if (fields.length === 0) return `${doc}export type ${parameterTypeName(c)} = Record<string, never>;\n`;
    return `${doc}export interface ${parameterTypeName(c)} {\n${fields.join('\n')}\n}\n`;
  });
  const index = cmdlets.map((c) => `  '${c.name}': ${parameterTypeName(c)};`);
  return [
    '// Generated from manifests/*.xml by the build (src/manifest/parameter-types.ts): do not edit.',
    "import type { Credential } from '../../src/host/cmdlet.js';",
    '',
    ...interfaces,
    "/** Every cmdlet's bound parameters, by cmdlet name. */",
    `export interface CmdletParameters {\n${index.join('\n')}\n}\n`,
  ].join('\n');
}

/** Writes cmdlets/generated/parameters.d.ts under `root`, only when it changed (so the build's freshness check stays quiet). */
export function writeParameterTypes(root: string, cmdlets: readonly CmdletManifest[]): void {
  const file = join(root, 'cmdlets', 'generated', 'parameters.d.ts');
  const text = renderParameterTypes(cmdlets);
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}
