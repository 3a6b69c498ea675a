/**
 * en-US/AzsBackup-help.xml: MAML help, the format Get-Help reads for a function that names it with
 * `.ExternalHelp`. Synopsis, description, one syntax block per parameter set, every parameter with
 * its help text, the output type and the manifest's examples.
 */
import type { CmdletManifest, ParameterDef, ParameterSetMembership } from '../manifest/model.js';
import { el, renderXmlDocument, type XmlElement, type XmlNode } from './xml.js';

const ns = {
  xmlns: 'http://msh',
  maml: 'http://schemas.microsoft.com/maml/2004/10',
  command: 'http://schemas.microsoft.com/maml/dev/command/2004/10',
  dev: 'http://schemas.microsoft.com/maml/dev/2004/10',
  MSHelp: 'http://msdn.microsoft.com/mshelp',
};

function paragraphs(text: string): XmlElement[] {
  const paras = text
    .split(/\r?\n\s*\r?\n/)
    .map((p) => p.replace(/\s*\r?\n\s*/g, ' ').trim())
    .filter((p) => p !== '');
  return (paras.length > 0 ? paras : ['']).map((p) => el('maml:para', p));
}

/** The type as Get-Help shows it: a switch has no value. */
function valueTypeName(p: ParameterDef): string {
  return p.type === 'Switch' ? 'SwitchParameter' : p.type;
}

interface ParameterView {
  name: string;
  help: string;
  type: string;
  required: boolean;
  position?: number;
  pipeline: boolean;
  aliases: string[];
  isSwitch: boolean;
  validateSet?: string[];
}

function view(p: ParameterDef, m: ParameterSetMembership | undefined): ParameterView {
  // In the parameters section one line must describe all sets: required when required in every set.
  const all = p.sets;
  return {
    name: p.name,
    help: p.help,
    type: valueTypeName(p),
    required: m ? m.mandatory : all.every((s) => s.mandatory),
    position: m ? m.position : all.every((s) => s.position === all[0]!.position) ? all[0]!.position : undefined,
    pipeline: m ? m.valueFromPipelineByPropertyName : all.some((s) => s.valueFromPipelineByPropertyName),
    aliases: p.aliases,
    isSwitch: p.type === 'Switch',
    validateSet: p.validation.set,
  };
}

const shouldProcessParameters: ParameterView[] = [
  {
    name: 'Confirm',
    help: 'Prompts you for confirmation before running the cmdlet.',
    type: 'SwitchParameter',
    required: false,
    pipeline: false,
    aliases: ['cf'],
    isSwitch: true,
  },
  {
    name: 'WhatIf',
    help: 'Shows what would happen if the cmdlet runs. The cmdlet is not run.',
    type: 'SwitchParameter',
    required: false,
    pipeline: false,
    aliases: ['wi'],
    isSwitch: true,
  },
];

function parameterElement(v: ParameterView, inSyntax: boolean): XmlElement {
  const children: XmlNode[] = [el('maml:name', v.name), el('maml:description', paragraphs(v.help))];
  if (inSyntax && v.validateSet && v.validateSet.length > 0) {
    children.push(
      el(
        'command:parameterValueGroup',
        v.validateSet.map((s) => el('command:parameterValue', { required: 'false', command: 'false', variableLength: 'false' }, s)),
      ),
    );
  } else if (!v.isSwitch) {
    children.push(el('command:parameterValue', { required: 'true', variableLength: 'false' }, v.type));
  }
  children.push(el('dev:type', [el('maml:name', v.type), el('maml:uri')]));
  children.push(el('dev:defaultValue', v.isSwitch ? 'False' : 'None'));
  return el(
    'command:parameter',
    {
      required: String(v.required),
      variableLength: 'true',
      globbing: 'false',
      pipelineInput: v.pipeline ? 'True (ByPropertyName)' : 'False',
      position: v.position === undefined ? 'named' : String(v.position),
      aliases: v.aliases.length > 0 ? v.aliases.join(', ') : 'none',
    },
    children,
  );
}

function syntaxItem(cmdlet: CmdletManifest, set: string): XmlElement {
  const members = cmdlet.parameters
    .map((p, index) => ({ p, index, m: p.sets.find((s) => s.set === set) }))
    .filter((x): x is { p: ParameterDef; index: number; m: ParameterSetMembership } => x.m !== undefined)
    // As PowerShell prints syntax: positional parameters by position, then the rest as declared.
    .sort((a, b) => (a.m.position ?? Infinity) - (b.m.position ?? Infinity) || a.index - b.index);
  const views = members.map(({ p, m }) => view(p, m));
  if (cmdlet.supportsShouldProcess) views.push(...shouldProcessParameters);
  return el('command:syntaxItem', [el('maml:name', cmdlet.name), ...views.map((v) => parameterElement(v, true))]);
}

function commandElement(cmdlet: CmdletManifest): XmlElement {
  const sets = [cmdlet.defaultParameterSet, ...cmdlet.parameterSets.filter((s) => s !== cmdlet.defaultParameterSet)];
  const parameters = [...cmdlet.parameters].sort((a, b) => a.name.localeCompare(b.name, 'en')).map((p) => view(p, undefined));
  if (cmdlet.supportsShouldProcess) parameters.push(...shouldProcessParameters);
  parameters.sort((a, b) => a.name.localeCompare(b.name, 'en'));
  const pipelineParams = cmdlet.parameters.filter((p) => p.sets.some((s) => s.valueFromPipelineByPropertyName));

  return el('command:command', { 'xmlns:maml': ns.maml, 'xmlns:command': ns.command, 'xmlns:dev': ns.dev, 'xmlns:MSHelp': ns.MSHelp }, [
    el('command:details', [
      el('command:name', cmdlet.name),
      el('command:verb', cmdlet.verb),
      el('command:noun', cmdlet.noun),
      el('maml:description', paragraphs(cmdlet.synopsis)),
    ]),
    el('maml:description', paragraphs(cmdlet.description)),
    el(
      'command:syntax',
      sets.map((s) => syntaxItem(cmdlet, s)),
    ),
    el(
      'command:parameters',
      parameters.map((v) => parameterElement(v, false)),
    ),
    el('command:inputTypes', [
      el('command:inputType', [
        el('dev:type', [el('maml:name', pipelineParams.length > 0 ? 'System.Management.Automation.PSObject' : 'None')]),
        el(
          'maml:description',
          paragraphs(
            pipelineParams.length > 0
              ? `Objects with the properties ${pipelineParams.map((p) => [p.name, ...p.aliases].join(' or ')).join(', ')} bind by property name.`
              : 'This cmdlet takes no pipeline input.',
          ),
        ),
      ]),
    ]),
    el('command:returnValues', [
      el('command:returnValue', [
        el('dev:type', [el('maml:name', cmdlet.outputType ?? 'None')]),
        el(
          'maml:description',
          paragraphs(
            !cmdlet.outputType
              ? 'This cmdlet returns nothing.'
              : cmdlet.output === 'List'
                ? `Any number of ${cmdlet.outputType} objects.`
                : `One ${cmdlet.outputType} object, or none.`,
          ),
        ),
      ]),
    ]),
    el('maml:alertSet', [
      el(
        'maml:alert',
        paragraphs(
          'Generated from the AzsBackup manifest of this cmdlet. Get-Help about_AzsBackup explains the concepts, the setup, key ' +
            'rotation and restoring on a redeployed machine.',
        ),
      ),
    ]),
    el(
      'command:examples',
      cmdlet.examples
        .filter((ex) => ex.shell !== 'Cli')
        .map((ex, i) =>
          el('command:example', [
            el('maml:title', `-------------------------- Example ${i + 1}: ${ex.title} --------------------------`),
            el('dev:code', ex.code),
            el('dev:remarks', paragraphs(ex.remarks)),
          ]),
        ),
    ),
    el('command:relatedLinks'),
  ]);
}

export function generateMaml(cmdlets: readonly CmdletManifest[]): string {
  const sorted = [...cmdlets].sort((a, b) => a.name.localeCompare(b.name, 'en'));
  return renderXmlDocument(el('helpItems', { schema: 'maml', xmlns: ns.xmlns }, sorted.map(commandElement)));
}
