/**
 * Help from the manifest alone, laid out as PowerShell's Get-Help -Full lays it out, and the list
 * of cmdlets for `azsbackup --help`.
 */
import type { CmdletManifest, ParameterDef, ParameterSetMembership } from '../manifest/model.js';
import { secretEnvName } from './secrets.js';

const allSetsName = '__AllParameterSets';

function wrap(textBlock: string, indent: number, width: number): string {
  const pad = ' '.repeat(indent);
  return textBlock
    .split('\n')
    .map((para) => {
      if (para.trim() === '') return '';
      const words = para.split(/\s+/).filter(Boolean);
      const lines: string[] = [];
      let line = '';
      for (const w of words) {
        if (line && pad.length + line.length + 1 + w.length > width) {
          lines.push(pad + line);
          line = w;
        } else line = line ? `${line} ${w}` : w;
      }
      if (line) lines.push(pad + line);
      return lines.join('\n');
    })
    .join('\n');
}

function typeLabel(p: ParameterDef): string {
  return p.type === 'Switch' ? '' : ` <${p.type}>`;
}

function syntaxItem(p: ParameterDef, m: ParameterSetMembership): string {
  const name = m.position !== undefined ? `[-${p.name}]` : `-${p.name}`;
  const item = `${name}${typeLabel(p)}`;
  return m.mandatory ? item : `[${item}]`;
}

/** One syntax line per parameter set, e.g. `Set-BackupShare [-Path] <String> [-UserName <String>] [-WhatIf] [-Confirm] [<CommonParameters>]`. */
export function syntaxLines(m: CmdletManifest): string[] {
  return syntaxItems(m).map((items) => `${m.name} ${items.join(' ')}`);
}

/** Wraps a syntax line between items, never inside one, continuation lines indented further. */
function wrapSyntax(m: CmdletManifest, items: string[], width: number): string {
  const lines: string[] = [];
  let line = `    ${m.name}`;
  for (const item of items) {
    if (line.length + 1 + item.length > width && line.trim() !== m.name && line.trim() !== '') {
      lines.push(line);
      line = `        ${item}`;
    } else line = `${line} ${item}`;
  }
  lines.push(line);
  return lines.join('\n');
}

function syntaxItems(m: CmdletManifest): string[][] {
  return m.parameterSets.map((set) => {
    const members = m.parameters
      .map((p) => ({ p, s: p.sets.find((x) => x.set === set) }))
      .filter((x): x is { p: ParameterDef; s: ParameterSetMembership } => x.s !== undefined);
    const positional = members.filter((x) => x.s.position !== undefined).sort((a, b) => a.s.position! - b.s.position!);
    const namedMandatory = members.filter((x) => x.s.position === undefined && x.s.mandatory);
    const namedOptional = members.filter((x) => x.s.position === undefined && !x.s.mandatory);
    const items = [...positional, ...namedMandatory, ...namedOptional].map((x) => syntaxItem(x.p, x.s));
    if (m.supportsShouldProcess) items.push('[-WhatIf]', '[-Confirm]');
    items.push('[<CommonParameters>]');
    return items;
  });
}

function setLabel(m: CmdletManifest, p: ParameterDef): string {
  if (p.sets.length === m.parameterSets.length) return '(All)';
  return p.sets.map((s) => s.set).join(', ');
}

function parameterBlock(m: CmdletManifest, p: ParameterDef, width: number): string {
  const rows: [string, string][] = [];
  const mandatory = [...new Set(p.sets.map((s) => s.mandatory))];
  const positions = [...new Set(p.sets.map((s) => (s.position === undefined ? 'named' : String(s.position))))];
  rows.push(['Required?', mandatory.length === 1 ? String(mandatory[0]) : p.sets.map((s) => `${s.mandatory} (${s.set})`).join(', ')]);
  rows.push(['Position?', positions.length === 1 ? positions[0]! : p.sets.map((s) => `${s.position ?? 'named'} (${s.set})`).join(', ')]);
  rows.push(['Accept pipeline input?', p.sets.some((s) => s.valueFromPipelineByPropertyName) ? 'True (ByPropertyName)' : 'False']);
  if (m.parameterSets.length > 1 || m.parameterSets[0] !== allSetsName) rows.push(['Parameter set name', setLabel(m, p)]);
  rows.push(['Aliases', p.aliases.length ? p.aliases.join(', ') : 'None']);
  const v = p.validation;
  if (v.set) rows.push(['Accepted values', v.set.join(', ')]);
  if (v.range) rows.push(['Range', `${v.range.min} to ${v.range.max}`]);
  if (v.length) rows.push(['Length', `${v.length.min} to ${v.length.max} characters`]);
  if (v.pattern) rows.push(['Pattern', v.pattern]);
  if (p.type === 'String[]') rows.push(['Multiple values', `repeat -${p.name}, or separate with commas`]);
  if (p.secret) {
    rows.push([
      'Secret',
      p.type === 'PSCredential'
        ? `user name as the value; password from '-' (two lines on stdin: user, password), ${secretEnvName(p)}, or a prompt`
        : `never on the command line: '-' reads stdin, ${secretEnvName(p)}, or a prompt without echo`,
    ]);
  }
  const label = Math.max(...rows.map((r) => r[0].length)) + 4;
  return [`    -${p.name}${typeLabel(p)}`, wrap(p.help, 8, width), '', ...rows.map(([k, val]) => `        ${k.padEnd(label)}${val}`)].join(
    '\n',
  );
}

function commonBlock(m: CmdletManifest, width: number): string {
  const lines: string[] = [];
  if (m.supportsShouldProcess) {
    lines.push('    -WhatIf', wrap('Shows what would happen if the cmdlet runs. The cmdlet is not run.', 8, width), '');
    lines.push(
      '    -Confirm',
      wrap(
        `Prompts you for confirmation before running the cmdlet (ConfirmImpact ${m.confirmImpact}). Give -Confirm:$false to never ask.`,
        8,
        width,
      ),
      '',
    );
  }
  lines.push('    <CommonParameters>');
  lines.push(
    wrap(
      'This cmdlet supports --output json|clixml|table|list (default: json when standard output is not a terminal, list when it is)' +
        `${m.reportsProgress ? ' and --progress json (progress records as JSON lines on standard error)' : ''}. ` +
        '-Verbose writes what the cmdlet does as VERBOSE lines on standard error, -Debug adds DEBUG lines. ' +
        'Parameter names are case-insensitive, accept a unique prefix, and may be written -Name value, -Name:value, --name value or ' +
        '--name=value.',
      8,
      width,
    ),
  );
  return lines.join('\n');
}

/** The full help for one cmdlet. */
export function formatHelp(m: CmdletManifest, width = 100): string {
  const out: string[] = [];
  out.push('NAME', `    ${m.name}`, '');
  out.push('SYNOPSIS', wrap(m.synopsis, 4, width), '');
  out.push('SYNTAX');
  for (const items of syntaxItems(m)) out.push(wrapSyntax(m, items, width), '');
  if (m.description) out.push('DESCRIPTION', wrap(m.description, 4, width), '');
  out.push('PARAMETERS');
  for (const p of m.parameters) out.push(parameterBlock(m, p, width), '');
  out.push(commonBlock(m, width), '');
  out.push('OUTPUTS', `    ${m.outputType ?? 'None'}${outputShape(m)}`, '');
  const examples = m.examples.filter((e) => e.shell !== 'PowerShell');
  if (examples.length) {
    out.push('EXAMPLES');
    examples.forEach((e, i) => {
      out.push(`    ---------- Example ${i + 1}${e.title ? `: ${e.title}` : ''} ----------`, '');
      out.push(
        e.code
          .split('\n')
          .map((l) => `    ${l}`)
          .join('\n'),
        '',
      );
      if (e.remarks) out.push(wrap(e.remarks, 4, width), '');
    });
  }
  return `${out.join('\n').replace(/\n+$/, '')}\n`;
}

/** What --output json prints: documented per cmdlet. */
export function outputShape(m: CmdletManifest): string {
  if (!m.outputType) return '';
  const shape = (o: string) =>
    o === 'List'
      ? 'a list: --output json always prints an array, [] when there is none'
      : 'one object: --output json prints it as an object, nothing when there is none';
  const sets = Object.entries(m.setOutput ?? {})
    .filter(([, o]) => o !== m.output)
    .map(([set, o]) => `; with parameter set ${set}, ${shape(o)}`);
  return ` (${shape(m.output)}${sets.join('')})`;
}

/** `azsbackup --help`: what the host is and every cmdlet with its synopsis. */
export function formatCmdletList(cmdlets: readonly CmdletManifest[], width = 100): string {
  const sorted = [...cmdlets].sort((a, b) => a.name.localeCompare(b.name));
  const col = Math.max(0, ...sorted.map((c) => c.name.length)) + 2;
  const lines = [
    'Usage: azsbackup <Verb-Noun> [-Parameter value] [-Switch] [--output json|clixml|table|list]',
    '       azsbackup <Verb-Noun> -?        help for one cmdlet',
    '',
    'Cmdlets:',
    ...sorted.map((c) => {
      const head = `  ${c.name.padEnd(col)}`;
      return head + wrap(c.synopsis, head.length, width).trimStart();
    }),
    '',
    'Secrets are never taken from the command line: give them as -, in AZSBACKUP_<PARAMETERNAME>, or at the prompt.',
    'AZSBACKUP_HOME selects the folder that holds configuration and state.',
  ];
  return `${lines.join('\n')}\n`;
}
