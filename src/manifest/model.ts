/**
 * The model of a cmdlet manifest (manifests/<Verb-Noun>.xml) and of the output types
 * (manifests/Types.xml), after loading and validation. The host, the help printer, the output
 * formatters and the PowerShell module generator all read this and nothing else.
 */

/** Parameter types a manifest may declare, named as PowerShell names them. */
export type ParameterType =
  | 'String'
  | 'String[]'
  | 'Int32'
  | 'Int64'
  | 'Boolean'
  | 'Switch'
  | 'DateTime'
  | 'Guid'
  | 'SecureString'
  | 'PSCredential';

export const parameterTypes: readonly ParameterType[] = [
  'String',
  'String[]',
  'Int32',
  'Int64',
  'Boolean',
  'Switch',
  'DateTime',
  'Guid',
  'SecureString',
  'PSCredential',
];

/** Property types an output object may declare; `Object` and lists name another declared type. */
export type PropertyType =
  | 'String'
  | 'Int32'
  | 'Int64'
  | 'Double'
  | 'Boolean'
  | 'DateTime'
  | 'TimeSpan'
  | 'Guid'
  | 'String[]'
  | 'Object'
  | 'Object[]';

export const propertyTypes: readonly PropertyType[] = [
  'String',
  'Int32',
  'Int64',
  'Double',
  'Boolean',
  'DateTime',
  'TimeSpan',
  'Guid',
  'String[]',
  'Object',
  'Object[]',
];

export interface ParameterSetMembership {
  set: string;
  mandatory: boolean;
  /** Position in this set; undefined means named only. */
  position?: number;
  valueFromPipelineByPropertyName: boolean;
}

export interface Validation {
  set?: string[];
  range?: { min: number; max: number };
  pattern?: string;
  length?: { min: number; max: number };
  /** `<ValidateNotNullOrEmpty/>`: an empty value (or list) is refused, as PowerShell's attribute refuses it. */
  notEmpty?: boolean;
}

export interface ParameterDef {
  name: string;
  type: ParameterType;
  aliases: string[];
  /** Never taken from argv: `-`, AZSBACKUP_<NAME> or a prompt. True for SecureString and PSCredential. */
  secret: boolean;
  /** One entry per parameter set the parameter belongs to. */
  sets: ParameterSetMembership[];
  validation: Validation;
  help: string;
  /**
   * Where tab completion finds values: `Verb-Noun.Property`, the named cmdlet's objects' property
   * (e.g. `Get-InfrastructureBackup.Name`).
   */
  completeFrom?: string;
}

export interface Example {
  title: string;
  code: string;
  remarks: string;
  /** Where the example runs: both (the default), only the command line (bash), or only PowerShell. */
  shell: 'Both' | 'Cli' | 'PowerShell';
}

export type ConfirmImpact = 'None' | 'Low' | 'Medium' | 'High';

export interface CmdletManifest {
  /** `Verb-Noun`. */
  name: string;
  verb: string;
  noun: string;
  /** The file it was loaded from, for error messages. */
  file: string;
  synopsis: string;
  description: string;
  parameterSets: string[];
  defaultParameterSet: string;
  parameters: ParameterDef[];
  supportsShouldProcess: boolean;
  confirmImpact: ConfirmImpact;
  /** Output type name (declared in Types.xml), or undefined when the cmdlet returns nothing. */
  outputType?: string;
  /** True when the cmdlet reports progress (the module then shows Write-Progress). */
  reportsProgress: boolean;
  /**
   * `List`: returns any number of objects, so `--output json` always prints an array (`[]` for
   * none). `Single`: at most one object, printed as an object (nothing when there is none).
   */
  output: 'List' | 'Single';
  /** A parameter set whose shape differs from the cmdlet's (Get-InfrastructureBackup -Name gets one). */
  setOutput?: Record<string, 'List' | 'Single'>;
  /** Refuses more than one piped object unless -Force (restoring every backup in turn is never meant). */
  singleInput: boolean;
  /** Other names the PowerShell module exports for it (e.g. Azure Stack's), optionally expanding one property of its output. */
  aliases: CmdletAlias[];
  examples: Example[];
}

export interface CmdletAlias {
  name: string;
  /** The alias returns this property of each object instead of the object (New-AzsEncryptionKeyBase64 returns the key). */
  expandProperty?: string;
}

export interface PropertyDef {
  name: string;
  type: PropertyType;
  /** For Object and Object[]: the declared type of the element. */
  typeName?: string;
  /** A secret the module hands over as a SecureString (unless -AsPlainText). */
  secret?: boolean;
}

export interface TypeDef {
  name: string;
  properties: PropertyDef[];
  /** Default table columns, in order. */
  tableColumns: string[];
}

export type TypeRegistry = ReadonlyMap<string, TypeDef>;

/** Everything the manifests folder declares. */
export interface ManifestSet {
  cmdlets: CmdletManifest[];
  types: TypeRegistry;
  /** manifests/about_AzsBackup.help.txt: the module's concepts topic (Get-Help about_AzsBackup). */
  about?: string;
}

/**
 * A parameter named Path or …Path (a String, or a String[] of several) names a file or folder: a relative path resolves against the
 * caller's current location (the shell's, or PowerShell's, PSDrives included), the same way in
 * every cmdlet. UNC paths and URLs (smb://) pass as they are.
 */
export function isPathParameter(p: Pick<ParameterDef, 'name' | 'type'>): boolean {
  return /Path$/.test(p.name) && (p.type === 'String' || p.type === 'String[]');
}

/** A location on another machine, never relative to a local folder: a UNC path or a URL (smb://). */
export const remoteLocation = /^(\\\\|\/\/|[A-Za-z][A-Za-z0-9+.-]*:\/\/)/;

/** What the command line keeps as given: a remote location, or a Windows drive path (PowerShell has its drives). */
export const keptAsGiven = new RegExp(`${remoteLocation.source}|^[A-Za-z]:[\\\\/]`);
