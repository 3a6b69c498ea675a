/**
 * PowerShell source-text helpers shared by the generators: quoting, type names, and the checks that
 * keep manifest text from ever becoming code.
 */
import { AzsError } from '../errors.js';
import type { ParameterType } from '../manifest/model.js';

/** A single-quoted PowerShell string literal. PowerShell treats the typographic single quotes as quotes too. */
export function psQuote(text: string): string {
  return `'${text.replace(/['\u2018\u2019\u201A\u201B]/g, (q) => q + q)}'`;
}

export function psStringArray(items: readonly string[]): string {
  return `@(${items.map(psQuote).join(', ')})`;
}

/** .NET type of each manifest parameter type, spelled out in full (no accelerators, no aliases). */
export const dotNetParameterType: Readonly<Record<ParameterType, string>> = {
  String: 'System.String',
  'String[]': 'System.String[]',
  Int32: 'System.Int32',
  Int64: 'System.Int64',
  Boolean: 'System.Boolean',
  Switch: 'System.Management.Automation.SwitchParameter',
  DateTime: 'System.DateTime',
  Guid: 'System.Guid',
  SecureString: 'System.Security.SecureString',
  PSCredential: 'System.Management.Automation.PSCredential',
};

/** Parameters (and their aliases) every advanced function gets from PowerShell itself. */
export const commonParameterNames: readonly string[] = [
  'Verbose',
  'vb',
  'Debug',
  'db',
  'ErrorAction',
  'ea',
  'WarningAction',
  'wa',
  'InformationAction',
  'infa',
  'ProgressAction',
  'proga',
  'ErrorVariable',
  'ev',
  'WarningVariable',
  'wv',
  'InformationVariable',
  'iv',
  'OutVariable',
  'ov',
  'OutBuffer',
  'ob',
  'PipelineVariable',
  'pv',
  'WhatIf',
  'wi',
  'Confirm',
  'cf',
  'UseTransaction',
  'usetx',
];

const identifier = /^[A-Za-z][A-Za-z0-9]*$/;

/**
 * Names end up in generated code as bare words; anything but a plain identifier is refused rather
 * than escaped, so a manifest can never inject code.
 */
export function assertIdentifier(name: string, what: string, file: string): void {
  if (!identifier.test(name)) {
    throw new AzsError(`${file}: ${what} '${name}' is not a plain identifier (letters and digits, starting with a letter).`, {
      errorId: 'PsModuleInvalidName',
      category: 'InvalidData',
      targetObject: name,
      recommendedAction: `Rename it in ${file} to letters and digits only.`,
    });
  }
}

/** A number as PowerShell source: integers stay integers, so ValidateRange keeps the parameter's type. */
export function psNumber(n: number): string {
  if (!Number.isFinite(n)) {
    throw new AzsError(`Range bound ${n} is not a finite number.`, {
      errorId: 'PsModuleInvalidRange',
      category: 'InvalidData',
      targetObject: n,
    });
  }
  return Number.isInteger(n) ? String(n) : n.toString();
}
