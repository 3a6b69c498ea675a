/**
 * One advanced function per cmdlet manifest. The function only declares what the manifest says
 * (so PowerShell binds, validates and completes before anything starts), asks ShouldProcess, and
 * hands its bound parameters to the module's one private helper, Invoke-AzsBackupHost.
 */
import { AzsError } from '../errors.js';
import type { CmdletManifest, ParameterDef, ParameterSetMembership } from '../manifest/model.js';
import { allParameterSets } from '../manifest/load.js';
import { assertIdentifier, commonParameterNames, dotNetParameterType, psNumber, psQuote, psStringArray } from './powershell.js';

const commonLower = new Set(commonParameterNames.map((n) => n.toLowerCase()));

function checkCmdlet(cmdlet: CmdletManifest): void {
  assertIdentifier(cmdlet.verb, 'verb', cmdlet.file);
  assertIdentifier(cmdlet.noun, 'noun', cmdlet.file);
  for (const set of cmdlet.parameterSets) {
    if (/[\r\n]/.test(set)) throw invalid(cmdlet, `parameter set name ${JSON.stringify(set)} spans lines`);
  }
  for (const p of cmdlet.parameters) {
    assertIdentifier(p.name, 'parameter', cmdlet.file);
    for (const a of p.aliases) assertIdentifier(a, `alias of -${p.name}`, cmdlet.file);
    for (const n of [p.name, ...p.aliases]) {
      if (commonLower.has(n.toLowerCase())) {
        throw invalid(cmdlet, `-${n} clashes with PowerShell's common parameter of the same name`);
      }
    }
    if (p.sets.length === 0) throw invalid(cmdlet, `-${p.name} belongs to no parameter set`);
  }
}

function invalid(cmdlet: CmdletManifest, why: string): AzsError {
  return new AzsError(`${cmdlet.file}: ${why}.`, {
    errorId: 'PsModuleInvalidManifest',
    category: 'InvalidData',
    targetObject: cmdlet.name,
    recommendedAction: `Fix ${cmdlet.file} and build again.`,
  });
}

function parameterAttribute(m: ParameterSetMembership): string {
  // A manifest without sets puts every parameter in PowerShell's implicit all-sets set, which has no name to write.
  const args = m.set === allParameterSets ? [] : [`ParameterSetName = ${psQuote(m.set)}`];
  if (m.mandatory) args.push('Mandatory = $true');
  if (m.position !== undefined) args.push(`Position = ${m.position}`);
  if (m.valueFromPipelineByPropertyName) args.push('ValueFromPipelineByPropertyName = $true');
  return `[Parameter(${args.join(', ')})]`;
}

function parameterBlock(p: ParameterDef): string[] {
  const lines = p.sets.map(parameterAttribute);
  if (p.aliases.length > 0) lines.push(`[Alias(${p.aliases.map(psQuote).join(', ')})]`);
  const v = p.validation;
  if (v.set && v.set.length > 0) lines.push(`[ValidateSet(${v.set.map(psQuote).join(', ')})]`);
  if (v.range) lines.push(`[ValidateRange(${psNumber(v.range.min)}, ${psNumber(v.range.max)})]`);
  if (v.pattern !== undefined) lines.push(`[ValidatePattern(${psQuote(v.pattern)})]`);
  if (v.length) lines.push(`[ValidateLength(${psNumber(v.length.min)}, ${psNumber(v.length.max)})]`);
  // Lets `-Credential CONTOSO\backup` prompt for the password, as built-in cmdlets do.
  if (p.type === 'PSCredential') lines.push('[System.Management.Automation.Credential()]');
  lines.push(`[${dotNetParameterType[p.type]}]`);
  lines.push(`$${p.name}`);
  return lines;
}

/** What -WhatIf and -Confirm name as the target: the object the call is about, when it was given. */
function shouldProcessTarget(cmdlet: CmdletManifest): string {
  const candidates = cmdlet.parameters.filter((p) => !p.secret && p.type !== 'Switch');
  const target =
    candidates.find((p) => p.name === 'Name') ??
    candidates.find((p) => p.name === 'Path') ??
    candidates.find((p) => p.sets.some((s) => s.position === 0));
  const fallback = psQuote(cmdlet.noun);
  if (!target) return fallback;
  return `if ($PSBoundParameters.ContainsKey(${psQuote(target.name)})) { [System.String]$${target.name} } else { ${fallback} }`;
}

export function generateFunction(cmdlet: CmdletManifest): string {
  checkCmdlet(cmdlet);
  const binding = cmdlet.defaultParameterSet && cmdlet.defaultParameterSet !== allParameterSets
    ? [`DefaultParameterSetName = ${psQuote(cmdlet.defaultParameterSet)}`]
    : [];
  if (cmdlet.supportsShouldProcess) binding.push('SupportsShouldProcess = $true', `ConfirmImpact = ${psQuote(cmdlet.confirmImpact)}`);
  // Only what the manifest numbers is positional, as in the host.
  binding.push('PositionalBinding = $false');

  const params = cmdlet.parameters.map((p) => parameterBlock(p).map((l) => `        ${l}`).join('\n'));
  const invoke = [
    'Invoke-AzsBackupHost -Cmdlet $PSCmdlet',
    `-CommandName ${psQuote(cmdlet.name)}`,
    `-ParameterName ${psStringArray(cmdlet.parameters.map((p) => p.name))}`,
    '-BoundParameters $PSBoundParameters',
  ];
  if (cmdlet.outputType) invoke.push(`-OutputTypeName ${psQuote(cmdlet.outputType)}`);
  if (cmdlet.reportsProgress) invoke.push('-ReportsProgress');
  if (cmdlet.supportsShouldProcess) invoke.push('-Confirmed');

  const body: string[] = [];
  if (cmdlet.supportsShouldProcess) {
    body.push(
      `        $target = ${shouldProcessTarget(cmdlet)}`,
      `        if (-not $PSCmdlet.ShouldProcess($target, ${psQuote(cmdlet.name)})) {`,
      '            return',
      '        }',
    );
  }
  body.push(`        ${invoke.join(' ')}`);

  return [
    `function ${cmdlet.name} {`,
    '    <#',
    '    .ExternalHelp AzsBackup-help.xml',
    '    #>',
    `    [CmdletBinding(${binding.join(', ')})]`,
    ...(cmdlet.outputType ? [`    [OutputType(${psQuote(cmdlet.outputType)})]`] : []),
    '    param(',
    params.join(',\n\n'),
    '    )',
    '',
    '    process {',
    ...body,
    '    }',
    '}',
    '',
  ].join('\n');
}
