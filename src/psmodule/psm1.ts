/**
 * AzsBackup.psm1: the private helpers, one advanced function per cmdlet sorted by name, the other
 * names of a cmdlet (Azure Stack's), and the argument completers the manifests ask for.
 */
import type { CmdletManifest, TypeRegistry } from '../manifest/model.js';
import { generateAliasFunction, generateFunction } from './functions.js';
import { assertIdentifier, psQuote, psStringArray } from './powershell.js';
import { runtimeSource } from './runtime.js';

/** Every name the module exports: functions (cmdlets and expanding aliases) and plain aliases. */
export function exportedNames(cmdlets: readonly CmdletManifest[]): { functions: string[]; aliases: string[] } {
  const sorted = [...cmdlets].sort((a, b) => a.name.localeCompare(b.name, 'en'));
  const all = sorted.flatMap((c) => c.aliases);
  const byName = (a: string, b: string) => a.localeCompare(b, 'en');
  return {
    functions: [...sorted.map((c) => c.name), ...all.filter((a) => a.expandProperty !== undefined).map((a) => a.name)].sort(byName),
    aliases: all
      .filter((a) => a.expandProperty === undefined)
      .map((a) => a.name)
      .sort(byName),
  };
}

function completers(cmdlets: readonly CmdletManifest[]): string[] {
  const lines: string[] = [];
  for (const c of cmdlets) {
    for (const p of c.parameters) {
      if (!p.completeFrom) continue;
      const [source, property] = p.completeFrom.split('.') as [string, string];
      assertIdentifier(property, 'CompleteFrom property', c.file);
      const names = [c.name, ...c.aliases.map((a) => a.name)];
      lines.push(
        `Register-ArgumentCompleter -CommandName ${psStringArray(names)} -ParameterName ${psQuote(p.name)} -ScriptBlock {`,
        '    param($commandName, $parameterName, $wordToComplete, $commandAst, $fakeBoundParameters)',
        `    Get-AzsBackupCompletion -Source ${psQuote(source)} -Property ${psQuote(property)} -WordToComplete $wordToComplete -BoundParameters $fakeBoundParameters`,
        '}',
      );
    }
  }
  return lines;
}

export function generatePsm1(
  cmdlets: readonly CmdletManifest[],
  hostPath: string,
  types: TypeRegistry = new Map(),
  helpUri?: string,
): string {
  const sorted = [...cmdlets].sort((a, b) => a.name.localeCompare(b.name, 'en'));
  const exported = exportedNames(sorted);
  // Set-Alias obeys ShouldProcess: the session's $WhatIfPreference or $ConfirmPreference = 'Low'
  // would skip it, or ask on every import.
  const aliasLines = sorted.flatMap((c) =>
    c.aliases
      .filter((a) => a.expandProperty === undefined)
      .map((a) => `Set-Alias -Name ${psQuote(a.name)} -Value ${psQuote(c.name)} -WhatIf:$false -Confirm:$false`),
  );
  return [
    '# Generated from the manifests by src/psmodule; do not edit. Rebuild with `npm run build`.',
    '#Requires -Version 7.2',
    runtimeSource(hostPath),
    ...sorted.map((c) => generateFunction(c, types, helpUri)),
    ...sorted.flatMap((c) => c.aliases.map((a) => generateAliasFunction(c, a, helpUri)).filter((f): f is string => f !== undefined)),
    ...aliasLines,
    ...completers(sorted),
    `Export-ModuleMember -Function ${psStringArray(exported.functions)} -Alias ${psStringArray(exported.aliases)}`,
    '',
  ].join('\n');
}
