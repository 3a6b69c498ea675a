import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { readCompiledManifests, loadCompiledManifest } from '../../src/manifest/compiled.js';
import { compileManifests, loadManifest, loadManifestSet, parseManifestText, parseTypesText } from '../../src/manifest/load.js';
import { approvedVerbs } from '../../src/manifest/verbs.js';

const fixtures = fileURLToPath(new URL('../fixtures/host/manifests/', import.meta.url));
const temp = mkdtempSync(join(tmpdir(), 'azs-manifest-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

const types = parseTypesText('Types.xml', readFileSync(join(fixtures, 'Types.xml'), 'utf8'));

/** A valid manifest; each test breaks one thing in it. */
const base = `<?xml version="1.0" encoding="utf-8"?>
<Cmdlet Verb="Set" Noun="BackupShare" DefaultParameterSet="Key" SupportsShouldProcess="true" ConfirmImpact="Medium" OutputType="Test.Echo">
  <Synopsis>Configures the share.</Synopsis>
  <Description>One.

  Two.</Description>
  <ParameterSets>
    <ParameterSet Name="Key"/>
    <ParameterSet Name="Certificate"/>
  </ParameterSets>
  <Parameters>
    <Parameter Name="Path" Type="String" Mandatory="true" Position="0" Aliases="SharePath,Share">
      <ValidatePattern>^(\\\\\\\\|/)</ValidatePattern>
      <Help>The share.</Help>
    </Parameter>
    <Parameter Name="EncryptionKey" Type="SecureString">
      <Set Name="Key"/>
      <Help>The key.</Help>
    </Parameter>
    <Parameter Name="EncryptionCertPath" Type="String">
      <Set Name="Certificate" Mandatory="true" Position="1"/>
      <Help>The certificate.</Help>
    </Parameter>
    <Parameter Name="BackupFrequencyInHours" Type="Int32">
      <ValidateRange Min="4" Max="12"/>
      <Help>Hours.</Help>
    </Parameter>
    <Parameter Name="SkipValidation" Type="Switch">
      <Help>Skips the check.</Help>
    </Parameter>
  </Parameters>
  <Examples>
    <Example>
      <Title>Example</Title>
      <Code>Set-BackupShare -Path \\\\fs01\\backups</Code>
      <Remarks>Sets it.</Remarks>
    </Example>
  </Examples>
</Cmdlet>`;

function parse(xml: string): ReturnType<typeof parseManifestText> {
  return parseManifestText('Set-BackupShare.xml', xml, types);
}

/** Parses and returns the InvalidManifest error, failing the test if there was none. */
function failure(xml: string): AzsError {
  try {
    parse(xml);
  } catch (e) {
    expect(e).toBeInstanceOf(AzsError);
    expect((e as AzsError).errorId).toBe('InvalidManifest');
    return e as AzsError;
  }
  throw new Error('the manifest was accepted');
}

function edit(from: string | RegExp, to: string): string {
  const out = base.replace(from, to);
  if (out === base) throw new Error(`test edit did not apply: ${String(from)}`);
  return out;
}

describe('a valid manifest', () => {
  test('loads into the model', () => {
    const m = parse(base);
    expect(m.name).toBe('Set-BackupShare');
    expect(m.parameterSets).toEqual(['Key', 'Certificate']);
    expect(m.description).toBe('One.\n\nTwo.');
    expect(m.confirmImpact).toBe('Medium');
    expect(m.outputType).toBe('Test.Echo');
    const path = m.parameters.find((p) => p.name === 'Path')!;
    expect(path.aliases).toEqual(['SharePath', 'Share']);
    expect(path.sets.map((s) => [s.set, s.mandatory, s.position])).toEqual([
      ['Key', true, 0],
      ['Certificate', true, 0],
    ]);
    expect(new RegExp(path.validation.pattern!).test('\\\\fs01\\x')).toBe(true);
    const key = m.parameters.find((p) => p.name === 'EncryptionKey')!;
    expect(key.secret).toBe(true);
    expect(key.sets.map((s) => s.set)).toEqual(['Key']);
    expect(m.parameters.find((p) => p.name === 'BackupFrequencyInHours')!.validation.range).toEqual({ min: 4, max: 12 });
    expect(m.examples[0]!.code).toBe('Set-BackupShare -Path \\\\fs01\\backups');
  });

  test('the fixture folder loads as a set, and the repository manifests too', () => {
    const set = loadManifestSet(fixtures);
    expect(set.cmdlets.map((c) => c.name)).toContain('Set-TestShare');
    const real = loadManifestSet(fileURLToPath(new URL('../../manifests/', import.meta.url)));
    expect(real.cmdlets.length).toBeGreaterThan(0);
  });

  test('the approved verbs are the 100 of PowerShell 7 Get-Verb', () => {
    expect(approvedVerbs).toHaveLength(100);
    expect(new Set(approvedVerbs).size).toBe(100);
    for (const v of ['Get', 'Set', 'Restore', 'Invoke', 'Register', 'Unregister', 'Test', 'Start', 'Clear', 'Update', 'New', 'Remove']) {
      expect(approvedVerbs).toContain(v);
    }
    expect(approvedVerbs).not.toContain('Delete');
  });
});

describe('each kind of mistake is refused, naming the file, the element and the reason', () => {
  test('XML syntax error', () => {
    const file = join(temp, 'Set-BackupShare.xml');
    writeFileSync(file, base.replace('</Synopsis>', '</Synopsys>'));
    expect(() => loadManifest(file, types)).toThrow(/Set-BackupShare\.xml: line \d+, column \d+: XML syntax error/);
  });

  test.each([
    [
      'unknown parameter type',
      edit('Name="BackupFrequencyInHours" Type="Int32"', 'Name="BackupFrequencyInHours" Type="Integer"'),
      /Parameter\[Name=BackupFrequencyInHours\]: unknown Type "Integer"/,
    ],
    [
      'duplicate parameter, other case',
      edit('Name="SkipValidation"', 'Name="PATH"'),
      /Parameter\[Name=PATH\]: "PATH" is already used by parameter Path/,
    ],
    [
      'duplicate through an alias',
      edit('Name="SkipValidation" Type="Switch"', 'Name="SkipValidation" Type="Switch" Aliases="share"'),
      /Parameter\[Name=SkipValidation\]: "share" is already used by parameter Path/,
    ],
    ['a common parameter name', edit('Name="SkipValidation"', 'Name="WhatIf"'), /Parameter\[Name=WhatIf\]: "WhatIf" is a common parameter/],
    ['unapproved verb', edit('Verb="Set"', 'Verb="Delete"'), /Cmdlet: Verb "Delete" is not an approved PowerShell verb/],
    ['plural noun', edit('Noun="BackupShare"', 'Noun="BackupShares"'), /Cmdlet: Noun "BackupShares" looks plural/],
    ['malformed noun', edit('Noun="BackupShare"', 'Noun="backup-share"'), /Cmdlet: Noun "backup-share" must be PascalCase/],
    [
      'missing DefaultParameterSet',
      edit(' DefaultParameterSet="Key"', ''),
      /Cmdlet: DefaultParameterSet is required when there are several parameter sets/,
    ],
    [
      'unknown DefaultParameterSet',
      edit('DefaultParameterSet="Key"', 'DefaultParameterSet="Keys"'),
      /Cmdlet: DefaultParameterSet "Keys" is not a declared parameter set/,
    ],
    [
      'a parameter naming an unknown set',
      edit('<Set Name="Key"/>', '<Set Name="Secret"/>'),
      /Parameter\[Name=EncryptionKey\]\/Set\[Name=Secret\]: names parameter set "Secret", which <ParameterSets> does not declare/,
    ],
    [
      'duplicate position within a set',
      edit('Mandatory="true" Position="1"', 'Mandatory="true" Position="0"'),
      /Parameter\[Name=EncryptionCertPath\]: Position 0 in parameter set Certificate is already taken by Path/,
    ],
    [
      'mandatory switch',
      edit('Name="SkipValidation" Type="Switch"', 'Name="SkipValidation" Type="Switch" Mandatory="true"'),
      /Parameter\[Name=SkipValidation\]: a Switch cannot be Mandatory/,
    ],
    [
      'ValidateRange with min > max',
      edit('Min="4" Max="12"', 'Min="12" Max="4"'),
      /Parameter\[Name=BackupFrequencyInHours\]\/ValidateRange: Min 12 is greater than Max 4/,
    ],
    [
      'ValidateRange not numeric',
      edit('Min="4" Max="12"', 'Min="four" Max="12"'),
      /Parameter\[Name=BackupFrequencyInHours\]\/ValidateRange: Min="four" must be a number/,
    ],
    [
      'bad regex in ValidatePattern',
      edit(/<ValidatePattern>.*<\/ValidatePattern>/, '<ValidatePattern>^(unclosed</ValidatePattern>'),
      /Parameter\[Name=Path\]\/ValidatePattern: "\^\(unclosed" is not a valid regular expression/,
    ],
    [
      'unknown ConfirmImpact',
      edit('ConfirmImpact="Medium"', 'ConfirmImpact="Severe"'),
      /Cmdlet: ConfirmImpact "Severe" must be one of None, Low, Medium, High/,
    ],
    [
      'OutputType not declared in Types.xml',
      edit('OutputType="Test.Echo"', 'OutputType="Test.Missing"'),
      /Cmdlet: OutputType "Test.Missing" is not declared in Types.xml/,
    ],
    [
      'Secret on a String',
      edit('Name="EncryptionCertPath" Type="String"', 'Name="EncryptionCertPath" Type="String" Secret="true"'),
      /Parameter\[Name=EncryptionCertPath\]: Secret="true" needs Type SecureString or PSCredential, not String/,
    ],
    ['missing Synopsis', edit(/<Synopsis>.*<\/Synopsis>/, ''), /Cmdlet\/Synopsis: is missing or empty/],
    ['missing parameter Help', edit('<Help>Hours.</Help>', ''), /Parameter\[Name=BackupFrequencyInHours\]\/Help: is missing or empty/],
    [
      'a misspelt attribute',
      edit('Mandatory="true" Position="0"', 'Mandatory="true" Postion="0"'),
      /Parameter\[Name=Path\]: unknown attribute Postion/,
    ],
    ['a file named after another cmdlet', base, /declares Set-BackupShare but the file is named Set-Other\.xml/],
  ])('%s', (kind, xml, message) => {
    const file = kind === 'a file named after another cmdlet' ? 'Set-Other.xml' : 'Set-BackupShare.xml';
    let error: AzsError | undefined;
    try {
      parseManifestText(file, xml, types);
    } catch (e) {
      error = e as AzsError;
    }
    expect(error, `${kind} was accepted`).toBeInstanceOf(AzsError);
    expect(error!.errorId).toBe('InvalidManifest');
    expect(error!.message).toContain(file);
    expect(error!.message).toMatch(message);
    expect(error!.recommendedAction).toMatch(/docs\/MANIFESTS\.md/);
  });

  test('a switch may be mandatory in the one set it selects', () => {
    const m = parse(
      edit(
        '<Parameter Name="SkipValidation" Type="Switch">',
        '<Parameter Name="SkipValidation" Type="Switch"><Set Name="Certificate" Mandatory="true"/>',
      ),
    );
    expect(m.parameters.find((p) => p.name === 'SkipValidation')!.sets).toEqual([
      { set: 'Certificate', mandatory: true, valueFromPipelineByPropertyName: false },
    ]);
  });

  test('the message of a malformed manifest names the element even through failure()', () => {
    expect(failure(edit('Min="4" Max="12"', 'Min="12" Max="4"')).message).toMatch(
      /^Invalid manifest Set-BackupShare\.xml: Parameter\[Name=BackupFrequencyInHours\]\/ValidateRange: /,
    );
  });
});

describe('Types.xml', () => {
  const goodTypes = `<Types>
  <Type Name="A.Backup" TableColumns="Name,Size">
    <Property Name="Name" Type="Guid"/>
    <Property Name="Size" Type="Int64"/>
    <Property Name="Roles" Type="Object[]" TypeName="A.Role"/>
  </Type>
  <Type Name="A.Role">
    <Property Name="RoleName" Type="String"/>
    <Property Name="Duration" Type="TimeSpan"/>
  </Type>
</Types>`;

  test('loads, with default table columns from the scalar properties', () => {
    const t = parseTypesText('Types.xml', goodTypes);
    expect(t.get('A.Backup')!.tableColumns).toEqual(['Name', 'Size']);
    expect(t.get('A.Backup')!.properties[2]).toEqual({ name: 'Roles', type: 'Object[]', typeName: 'A.Role' });
    expect(t.get('A.Role')!.tableColumns).toEqual(['RoleName', 'Duration']);
  });

  test.each([
    [
      'TableColumns naming an unknown property',
      goodTypes.replace('TableColumns="Name,Size"', 'TableColumns="Name,Bytes"'),
      /Type\[Name=A\.Backup\]: TableColumns names "Bytes", which is not a property of A\.Backup/,
    ],
    [
      'an Object property without TypeName',
      goodTypes.replace(' TypeName="A.Role"', ''),
      /Type\[Name=A\.Backup\]\/Property\[Name=Roles\]: a property of Type Object\[\] needs TypeName/,
    ],
    [
      'a TypeName that is not declared',
      goodTypes.replace('TypeName="A.Role"', 'TypeName="A.Nothing"'),
      /Property\[Name=Roles\]: TypeName "A\.Nothing" is not declared/,
    ],
    [
      'an unknown property type',
      goodTypes.replace('Type="TimeSpan"', 'Type="Duration"'),
      /Property\[Name=Duration\]: unknown Type "Duration"/,
    ],
    ['XML syntax error', goodTypes.replace('</Types>', ''), /Types\.xml: line \d+, column \d+: XML syntax error/],
  ])('%s', (_kind, xml, message) => {
    expect(() => parseTypesText('Types.xml', xml)).toThrow(message);
  });
});

describe('compiled manifests', () => {
  test('compileManifests writes one JSON file the runtime loader reads without XML', () => {
    const dir = join(temp, 'manifests');
    cpSync(fixtures, dir, { recursive: true });
    const out = join(temp, 'dist', 'manifests.json');
    compileManifests(dir, out);
    const compiled = readCompiledManifests(out);
    expect(Object.keys(compiled.cmdlets)).toContain('set-testshare');
    expect(compiled.cmdlets['set-testshare']!.file).toBe('Set-TestShare.xml');
    const lookup = loadCompiledManifest('SET-TESTSHARE', out);
    expect(lookup.cmdlet?.name).toBe('Set-TestShare');
    expect(lookup.types.get('Test.Echo')?.tableColumns).toEqual(['ParameterSetName', 'Json']);
    expect(loadCompiledManifest('Get-Nothing', out).cmdlet).toBeUndefined();
  });

  test('a malformed manifest stops the compile and writes nothing', () => {
    const dir = join(temp, 'broken');
    cpSync(fixtures, dir, { recursive: true });
    writeFileSync(join(dir, 'Get-TestItem.xml'), readFileSync(join(dir, 'Get-TestItem.xml'), 'utf8').replace('Type="Int32"', 'Type="Int"'));
    const out = join(temp, 'broken-dist', 'manifests.json');
    expect(() => compileManifests(dir, out)).toThrow(/Get-TestItem\.xml: Parameter\[Name=Top\]: unknown Type "Int"/);
    expect(() => readFileSync(out)).toThrow();
  });

  test('a stale compiled file is refused with what to do', () => {
    const out = join(temp, 'stale.json');
    writeFileSync(out, JSON.stringify({ formatVersion: 0, cmdlets: {}, types: {} }));
    expect(() => readCompiledManifests(out)).toThrow(/format 0/);
  });
});
