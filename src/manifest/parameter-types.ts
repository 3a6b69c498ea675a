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
    const fields = c.parameters.map((p) => `  ${p.name}${alwaysBound(c, p) ? '' : '?'}: ${TS_TYPE[p.type]};`);
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
    '/** Every cmdlet\'s bound parameters, by cmdlet name. */',
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
