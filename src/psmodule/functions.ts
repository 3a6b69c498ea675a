/**
 * One advanced function per cmdlet manifest. The function only declares what the manifest says
 * (so PowerShell binds, validates and completes before anything starts), asks ShouldProcess, and
 * hands its bound parameters to the module's one private helper, Invoke-AzsBackupHost.
 */
import { AzsError } from '../errors.js';
import {
  isPathParameter,
  type CmdletAlias,
  type CmdletManifest,
  type ParameterDef,
  type ParameterSetMembership,
  type TypeRegistry,
} from '../manifest/model.js';
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

/**
 * The sets a piped object may bind into. When some set is chosen by a mandatory piped parameter
 * (Get-InfrastructureBackup's ByName, by Name), a set without one takes nothing from the pipeline:
 * otherwise a shared piped property (SharePath → -Path) satisfies the default set first, and
 * `Get-InfrastructureBackup -Top 1 | Get-InfrastructureBackup` would list every backup.
 */
function pipelineSets(cmdlet: CmdletManifest): Set<string> {
  const chosenByPipeline = new Set(
    cmdlet.parameters.flatMap((p) => p.sets.filter((m) => m.mandatory && m.valueFromPipelineByPropertyName).map((m) => m.set)),
  );
  return chosenByPipeline.size > 0 ? chosenByPipeline : new Set(cmdlet.parameterSets);
}

function parameterAttribute(m: ParameterSetMembership, pipelineSet: Set<string>): string {
  // A manifest without sets puts every parameter in PowerShell's implicit all-sets set, which has no name to write.
  const args = m.set === allParameterSets ? [] : [`ParameterSetName = ${psQuote(m.set)}`];
  if (m.mandatory) args.push('Mandatory = $true');
  if (m.position !== undefined) args.push(`Position = ${m.position}`);
  if (m.valueFromPipelineByPropertyName && pipelineSet.has(m.set)) args.push('ValueFromPipelineByPropertyName = $true');
  return `[Parameter(${args.join(', ')})]`;
}

function parameterBlock(p: ParameterDef, pipelineSet: Set<string>): string[] {
  const lines = p.sets.map((m) => parameterAttribute(m, pipelineSet));
  if (isPathParameter(p)) lines.push('[AzsBackupPathAttribute()]');
  if (p.aliases.length > 0) lines.push(`[Alias(${p.aliases.map(psQuote).join(', ')})]`);
  const v = p.validation;
  if (v.set && v.set.length > 0) lines.push(`[ValidateSet(${v.set.map(psQuote).join(', ')})]`);
  if (v.range) lines.push(`[ValidateRange(${psNumber(v.range.min)}, ${psNumber(v.range.max)})]`);
  if (v.pattern !== undefined) lines.push(`[ValidatePattern(${psQuote(v.pattern)})]`);
  if (v.length) lines.push(`[ValidateLength(${psNumber(v.length.min)}, ${psNumber(v.length.max)})]`);
  if (v.notEmpty) lines.push('[ValidateNotNullOrEmpty()]');
  // Lets `-Credential CONTOSO\backup` prompt for the password, as built-in cmdlets do.
  if (p.type === 'PSCredential') lines.push('[System.Management.Automation.Credential()]');
  lines.push(`[${dotNetParameterType[p.type]}]`);
  lines.push(`$${p.name}`);
  return lines;
}

/** What -WhatIf and -Confirm name as the target: the object the call is about, when it was given. */
function shouldProcessTarget(cmdlet: CmdletManifest, parameters: string): string {
  const candidates = cmdlet.parameters.filter((p) => !p.secret && p.type !== 'Switch');
  const target =
    candidates.find((p) => p.name === 'Name') ??
    candidates.find((p) => p.name === 'Path') ??
    candidates.find((p) => p.sets.some((s) => s.position === 0));
  const fallback = psQuote(cmdlet.noun);
  if (!target) return fallback;
  return `if (${parameters}.ContainsKey(${psQuote(target.name)})) { [System.String]${parameters}[${psQuote(target.name)}] } else { ${fallback} }`;
}

/** The output properties the module hands over as SecureString (unless -AsPlainText). */
function secretProperties(cmdlet: CmdletManifest, types: TypeRegistry): string[] {
  const type = cmdlet.outputType === undefined ? undefined : types.get(cmdlet.outputType);
  return (type?.properties ?? []).filter((p) => p.secret).map((p) => p.name);
}

const has = (cmdlet: CmdletManifest, name: string): boolean => cmdlet.parameters.some((p) => p.name === name && p.type === 'Switch');

function cmdletBinding(cmdlet: CmdletManifest, helpUri: string | undefined): string {
  const binding =
    cmdlet.defaultParameterSet && cmdlet.defaultParameterSet !== allParameterSets
      ? [`DefaultParameterSetName = ${psQuote(cmdlet.defaultParameterSet)}`]
      : [];
  if (cmdlet.supportsShouldProcess) binding.push('SupportsShouldProcess = $true', `ConfirmImpact = ${psQuote(cmdlet.confirmImpact)}`);
  // Only what the manifest numbers is positional, as in the host.
  binding.push('PositionalBinding = $false');
  // Get-Help -Online opens it; only when package.json names where the project lives (help-uri.ts).
  if (helpUri !== undefined) binding.push(`HelpUri = ${psQuote(helpUri)}`);
  return `    [CmdletBinding(${binding.join(', ')})]`;
}

function paramBlock(cmdlet: CmdletManifest): string[] {
  const pipelineSet = pipelineSets(cmdlet);
  const params = cmdlet.parameters.map((p) =>
    parameterBlock(p, pipelineSet)
      .map((l) => `        ${l}`)
      .join('\n'),
  );
  return ['    param(', params.join(',\n\n'), '    )'];
}

/**
 * The body for one input: ShouldProcess, then the job or the host. `next` leaves this input for the
 * next one: `return` in a process block, `continue` in the loop over collected inputs, where a
 * `return` would drop every input after one that ShouldProcess declined.
 */
function callBody(cmdlet: CmdletManifest, types: TypeRegistry, parameters: string, indent: string, next: 'return' | 'continue'): string[] {
  const invoke = [
    'Invoke-AzsBackupHost -Cmdlet $PSCmdlet',
    `-CommandName ${psQuote(cmdlet.name)}`,
    `-ParameterName ${psStringArray(cmdlet.parameters.map((p) => p.name))}`,
    `-BoundParameters ${parameters}`,
  ];
  if (cmdlet.outputType) invoke.push(`-OutputTypeName ${psQuote(cmdlet.outputType)}`);
  const secrets = secretProperties(cmdlet, types);
  if (secrets.length > 0) invoke.push(`-SecretPropertyName ${psStringArray(secrets)}`);
  if (cmdlet.reportsProgress) invoke.push('-ReportsProgress');
  if (cmdlet.supportsShouldProcess) invoke.push('-Confirmed');
  // A cmdlet with -PassThru returns its object only when asked, as Set-Item does.
  if (has(cmdlet, 'PassThru')) invoke.push(`-DiscardOutput:(-not ${parameters}['PassThru'])`);

  const body: string[] = [];
  if (cmdlet.supportsShouldProcess) {
    body.push(
      `$target = ${shouldProcessTarget(cmdlet, parameters)}`,
      `if (-not $PSCmdlet.ShouldProcess($target, ${psQuote(cmdlet.name)})) {`,
      `    ${next}`,
      '}',
    );
  }
  if (has(cmdlet, 'AsJob')) {
    body.push(
      `if (${parameters}['AsJob']) {`,
      `    Start-AzsBackupJob -Cmdlet $PSCmdlet -CommandName ${psQuote(cmdlet.name)} -BoundParameters ${parameters}`,
      `    ${next}`,
      '}',
    );
  }
  body.push(invoke.join(' '));
  return body.map((l) => indent + l);
}

/**
 * The first line of every function: the preference variables of the scope it was called from, as a
 * compiled cmdlet reads them (Use-AzsBackupCallerPreference in AzsBackup.Runtime.ps1).
 */
const callerPreference = '        Use-AzsBackupCallerPreference -Cmdlet $PSCmdlet';

export function generateFunction(cmdlet: CmdletManifest, types: TypeRegistry = new Map(), helpUri?: string): string {
  checkCmdlet(cmdlet);
  const begin: string[] = [callerPreference];
  if (has(cmdlet, 'Force') && cmdlet.supportsShouldProcess) {
    // -Force skips the confirmation, as with Remove-Item -Force, unless -Confirm is given too.
    begin.push(
      "        if ($Force -and -not $PSBoundParameters.ContainsKey('Confirm')) {",
      "            $ConfirmPreference = 'None'",
      '        }',
    );
  }
  let blocks: string[];
  if (cmdlet.singleInput) {
    // Every input is collected first, so a piped list is refused before anything is done.
    blocks = [
      '    begin {',
      ...begin,
      '        $inputs = [System.Collections.Generic.List[System.Collections.IDictionary]]::new()',
      '    }',
      '',
      '    process {',
      '        $inputs.Add([System.Collections.Generic.Dictionary[System.String, System.Object]]::new($PSBoundParameters))',
      '    }',
      '',
      '    end {',
      '        if ($inputs.Count -gt 1 -and -not $Force) {',
      `            $PSCmdlet.ThrowTerminatingError((New-AzsBackupErrorRecord -ErrorId 'SeveralInputsRefused' -Category 'InvalidOperation' -TargetObject $inputs.Count -Message (${psQuote(`${cmdlet.name} received `)} + $inputs.Count + ${psQuote(' objects from the pipeline; it acts on one at a time, and nothing was done.')}) -RecommendedAction ${psQuote(`Pipe the one object you mean (for example with Select-Object -First 1), or add -Force to ${cmdlet.name} every piped object in turn.`)}))`,
      '        }',
      '        foreach ($bound in $inputs) {',
      ...callBody(cmdlet, types, '$bound', '            ', 'continue'),
      '        }',
      '    }',
    ];
  } else {
    blocks = [
      '    begin {',
      ...begin,
      '    }',
      '',
      '    process {',
      ...callBody(cmdlet, types, '$PSBoundParameters', '        ', 'return'),
      '    }',
    ];
  }

  return [
    `function ${cmdlet.name} {`,
    '    <#',
    '    .ExternalHelp AzsBackup-help.xml',
    '    #>',
    cmdletBinding(cmdlet, helpUri),
    ...(cmdlet.outputType ? [`    [OutputType(${psQuote(cmdlet.outputType)})]`] : []),
    ...paramBlock(cmdlet),
    '',
    ...blocks,
    '}',
    '',
  ].join('\n');
}

/**
 * Another name for a cmdlet (Azure Stack's): a plain alias, or, when it returns one property of the
 * output (New-AzsEncryptionKeyBase64 returns the key), a function with the same parameters that
 * calls the cmdlet and expands that property.
 */
export function generateAliasFunction(cmdlet: CmdletManifest, alias: CmdletAlias, helpUri?: string): string | undefined {
  if (alias.expandProperty === undefined) return undefined;
  assertIdentifier(alias.expandProperty, 'ExpandProperty', cmdlet.file);
  return [
    `function ${alias.name} {`,
    '    <#',
    '    .SYNOPSIS',
    `    ${cmdlet.name}, returning only its ${alias.expandProperty}.`,
    '    #>',
    cmdletBinding(cmdlet, helpUri),
    ...paramBlock(cmdlet),
    '',
    '    begin {',
    callerPreference,
    '    }',
    '',
    '    process {',
    `        ${cmdlet.name} @PSBoundParameters | Select-Object -ExpandProperty ${psQuote(alias.expandProperty)}`,
    '    }',
    '}',
    '',
  ].join('\n');
}
