import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { parseCommandLine } from '../../src/host/argv.js';
import { loadManifestSet } from '../../src/manifest/load.js';
import type { CmdletManifest } from '../../src/manifest/model.js';

const set = loadManifestSet(fileURLToPath(new URL('../fixtures/host/manifests/', import.meta.url)));
const cmdlet = (name: string): CmdletManifest => set.cmdlets.find((c) => c.name === name)!;
const share = cmdlet('Set-TestShare');
const item = cmdlet('Get-TestItem');

async function usage(m: CmdletManifest, args: string[]): Promise<AzsError> {
  try {
    await parseCommandLine(m, args);
  } catch (e) {
    expect(e).toBeInstanceOf(AzsError);
    expect((e as AzsError).exitCode).toBe(2);
    return e as AzsError;
  }
  throw new Error(`accepted: ${args.join(' ')}`);
}

describe('PowerShell and GNU styles bind the same parameters', () => {
  test.each([
    [['-Path', '/srv/b', '-BackupFrequencyInHours', '6', '-SkipValidation']],
    [['-Path:/srv/b', '-BackupFrequencyInHours:6', '-SkipValidation:$true']],
    [['--path', '/srv/b', '--backup-frequency-in-hours', '6', '--skip-validation']],
    [['--path=/srv/b', '--backupfrequencyinhours=6', '--skipvalidation=true']],
    [['-PATH', '/srv/b', '-backupf', '6', '-skipv']],
    [['/srv/b', '-Back', '6', '-SkipValidation']].map((a) => a.map((x) => (x === '-Back' ? '-BackupF' : x))),
    [['-Share', '/srv/b', '-BackupFrequencyInHours', '6', '-SkipValidation']],
  ])('%j', async (args) => {
    const cl = await parseCommandLine(share, args);
    expect(cl.params).toEqual({ Path: '/srv/b', BackupFrequencyInHours: 6, SkipValidation: true });
    expect(cl.parameterSetName).toBe('Key');
  });

  test('switches: -Switch:$false, --no-switch, and values that start with a dash', async () => {
    expect((await parseCommandLine(share, ['/x', '-SkipValidation:$false'])).params.SkipValidation).toBe(false);
    expect((await parseCommandLine(share, ['/x', '--no-skip-validation'])).params.SkipValidation).toBe(false);
    expect((await parseCommandLine(share, ['/x', '-IsEnabled', '$false'])).params.IsEnabled).toBe(false);
    expect((await parseCommandLine(share, ['/x', '-IsEnabled:$true'])).params.IsEnabled).toBe(true);
    expect((await parseCommandLine(item, ['-Top', '-5'])).params.Top).toBe(-5);
    expect((await usage(share, ['/x', '-SkipValidation:maybe'])).errorId).toBe('ParameterArgumentTransformationError');
  });

  test('a Windows path keeps its colon and backslashes', async () => {
    const cl = await parseCommandLine(share, ['-Path:\\\\fs01\\share', '-EncryptionCertPath:C:\\certs\\b.cer']);
    expect(cl.params).toEqual({ Path: '\\\\fs01\\share', EncryptionCertPath: 'C:\\certs\\b.cer' });
  });

  test('common parameters: --output, -WhatIf, -Confirm:$false, --progress', async () => {
    const cl = await parseCommandLine(share, ['/x', '--output', 'CLIXML', '-WhatIf', '-Confirm:$false', '--progress=json']);
    expect([cl.output, cl.whatIf, cl.confirm, cl.progress]).toEqual(['clixml', true, false, 'json']);
    expect((await usage(share, ['/x', '--output', 'yaml'])).errorId).toBe('ParameterArgumentValidationError');
    // Get-TestItem has no ShouldProcess, so no -WhatIf.
    expect((await usage(item, ['-WhatIf'])).errorId).toBe('ParameterNotFound');
  });
});

describe('names', () => {
  test('an ambiguous prefix names the candidates', async () => {
    const e = await usage(share, ['/x', '-Backup', '5']);
    expect(e.errorId).toBe('AmbiguousParameter');
    expect(e.message).toContain('-BackupFrequencyInHours -BackupRetentionPeriodInDays');
  });

  test('an exact name wins over a longer one it prefixes', async () => {
    expect((await parseCommandLine(item, ['-Skip', '3'])).params).toEqual({ Skip: 3 });
  });

  test('an unknown parameter suggests close names', async () => {
    const e = await usage(share, ['/x', '-Pth', 'y']);
    expect(e.errorId).toBe('ParameterNotFound');
    expect(e.message).toMatch(/'Pth'.*Did you mean -Path\?/);
  });

  test('a parameter given twice is refused; an array accumulates', async () => {
    expect((await usage(share, ['-Path', '/a', '-SharePath', '/b'])).errorId).toBe('ParameterAlreadyBound');
    expect((await parseCommandLine(item, ['-Tag', 'red,GREEN'])).params.Tag).toEqual(['Red', 'Green']);
    expect((await parseCommandLine(item, ['-Tag', 'red', '-Tags', 'blue'])).params.Tag).toEqual(['Red', 'Blue']);
    // Given several times, each value is one element, commas and all.
    expect((await usage(item, ['-Tag', 'red,GREEN', '-Tags', 'blue'])).errorId).toBe('ParameterArgumentValidationError');
  });

  test('a missing value is reported', async () => {
    expect((await usage(share, ['-Path'])).errorId).toBe('MissingArgument');
    expect((await usage(share, ['-Path', '-SkipValidation'])).errorId).toBe('MissingArgument');
  });
});

describe('conversion and validation', () => {
  test.each([
    [share, ['/x', '-BackupFrequencyInHours', '13'], 'ParameterArgumentValidationError', /greater than the maximum allowed range of 12/],
    [share, ['/x', '-BackupFrequencyInHours', '3'], 'ParameterArgumentValidationError', /less than the minimum allowed range of 4/],
    [share, ['/x', '-BackupFrequencyInHours', 'six'], 'ParameterArgumentTransformationError', /Cannot convert "six" to an Int32/],
    [share, ['/x', '-BackupFrequencyInHours', '99999999999'], 'ParameterArgumentTransformationError', /Int32/],
    [share, ['/x', '-Mode', 'quick'], 'ParameterArgumentValidationError', /does not belong to the set "Fast,Thorough"/],
    [share, ['http://fs01/backups'], 'ParameterArgumentValidationError', /does not match the/],
    [item, ['abcdefghij'], 'ParameterArgumentValidationError', /too long/],
    [item, ['-Since', 'yesterday'], 'ParameterArgumentTransformationError', /DateTime/],
    [item, ['-Id', '1234'], 'ParameterArgumentTransformationError', /Guid/],
    [item, ['-Tag', 'red,,blue'], 'ParameterArgumentValidationError', /empty element/],
    [item, ['-Size', '9007199254740993'], 'ParameterArgumentTransformationError', /Int64/],
  ])('%#: %j', async (m, args, errorId, message) => {
    const e = await usage(m, args);
    expect(e.errorId).toBe(errorId);
    expect(e.message).toMatch(message);
  });

  test('values come out typed and in canonical casing', async () => {
    const cl = await parseCommandLine(share, ['/x', '-Mode', 'THOROUGH']);
    expect(cl.params.Mode).toBe('Thorough');
    const i = await parseCommandLine(item, [
      '-Since',
      '2024-05-01T12:00:00.0000000Z',
      '-Id',
      '{6F1C2A9E-0B6D-4C43-9D1E-2F0A7C4B8E21}',
      '-Size',
      '5000000000',
    ]);
    expect(i.params.Since).toEqual(new Date('2024-05-01T12:00:00Z'));
    expect(i.params.Id).toBe('6f1c2a9e-0b6d-4c43-9d1e-2f0a7c4b8e21');
    expect(i.params.Size).toBe(5000000000);
  });
});

describe('parameter sets and positional binding', () => {
  test('the default set when nothing decides', async () => {
    expect((await parseCommandLine(item, [])).parameterSetName).toBe('List');
    expect((await parseCommandLine(item, ['-Since', '2024-01-01'])).parameterSetName).toBe('List');
  });

  test('a parameter of one set selects it', async () => {
    const cl = await parseCommandLine(share, ['/x', '-EncryptionCertPath', 'b.cer']);
    expect(cl.parameterSetName).toBe('Certificate');
    expect((await parseCommandLine(item, ['-Name', 'a'])).parameterSetName).toBe('ByName');
  });

  test('a positional value selects the set that has a position for it', async () => {
    const cl = await parseCommandLine(item, ['abc', '-Id', '6f1c2a9e-0b6d-4c43-9d1e-2f0a7c4b8e21']);
    expect(cl.parameterSetName).toBe('ByName');
    expect(cl.params.Name).toBe('abc');
  });

  test('parameters of two sets cannot be used together', async () => {
    const e = await usage(item, ['-Name', 'a', '-Top', '3']);
    expect(e.errorId).toBe('AmbiguousParameterSet');
    expect(e.message).toMatch(/-Name \(ByName\), -Top \(List\) cannot be used together/);
    expect((await usage(share, ['/x', '-EncryptionKey', '-', '-EncryptionCertPath', 'c'])).errorId).toBe('AmbiguousParameterSet');
  });

  test('too many positional values', async () => {
    const e = await usage(item, ['a', 'b']);
    expect(e.errorId).toBe('PositionalParameterNotFound');
    expect(e.message).toContain("'b'");
    expect((await usage(item, ['-Top', '1', 'a'])).errorId).toBe('PositionalParameterNotFound');
  });

  test('missing mandatory parameters of the chosen set are named; nothing is prompted', async () => {
    const e = await usage(share, ['-SkipValidation']);
    expect(e.errorId).toBe('MissingMandatoryParameter');
    expect(e.message).toMatch(/missing mandatory parameters: Path\.$/);
    const c = await usage(share, ['/x', '-EncryptionCertPath', '']);
    expect(c.errorId).toBe('ParameterArgumentValidationErrorEmptyStringNotAllowed');
  });

  test('`--` ends the parameters', async () => {
    expect((await parseCommandLine(item, ['--', '-odd'])).params.Name).toBe('-odd');
  });
});

describe('secrets on the command line', () => {
  test('a plain value is refused, naming the three ways and not the value', async () => {
    for (const args of [
      ['/x', '-EncryptionKey', 'hunter22'],
      ['/x', '-EncryptionKey:hunter22'],
      ['/x', '--encryption-key=hunter22'],
      ['/x', '-EncryptionKey', '-hunter22'],
    ]) {
      const e = await usage(share, args);
      expect(e.errorId).toBe('SecretOnCommandLine');
      const text = `${e.message} ${e.recommendedAction} ${JSON.stringify(e.toRecord())}`;
      expect(text).not.toContain('hunter22');
      expect(e.recommendedAction).toContain("'-EncryptionKey -' reads it from standard input");
      expect(e.recommendedAction).toContain('AZSBACKUP_ENCRYPTIONKEY');
      expect(e.recommendedAction).toContain('prompted without echo');
    }
  });

  test('`-`, no value, and a credential user name are recorded in command-line order', async () => {
    const cl = await parseCommandLine(share, ['/x', '-EncryptionKey', '-', '-Credential', 'CONTOSO\\backup']);
    expect(cl.secrets.map((s) => [s.parameter.name, s.source, s.userName])).toEqual([
      ['EncryptionKey', 'stdin', undefined],
      ['Credential', 'ask', 'CONTOSO\\backup'],
    ]);
    expect(cl.params).toEqual({ Path: '/x' });
    // A parameter of the cmdlet after a secret is that parameter, not the secret's value.
    expect((await parseCommandLine(share, ['/x', '-EncryptionKey', '-SkipValidation'])).params.SkipValidation).toBe(true);
    const bare = await parseCommandLine(share, ['/x', '-Credential', '-', '-EncryptionKey']);
    expect(bare.secrets.map((s) => [s.parameter.name, s.source])).toEqual([
      ['Credential', 'stdin'],
      ['EncryptionKey', 'ask'],
    ]);
  });
});

describe('secrets from the environment and parameter sets', () => {
  test('a secret in AZSBACKUP_<NAME> selects the parameter set it belongs to, unless named parameters say otherwise', async () => {
    const { loadManifest } = await import('../../src/manifest/load.js');
    const { loadTypes } = await import('../../src/manifest/load.js');
    const restore = loadManifest(
      new URL('../../manifests/Restore-AzsBackup.xml', import.meta.url).pathname,
      loadTypes(new URL('../../manifests/Types.xml', import.meta.url).pathname),
    );
    const name = '6f1c2e34-0d4b-4d7e-9a8e-0b9d2b1e7c55';
    expect((await parseCommandLine(restore, ['-Name', name], { AZSBACKUP_ENCRYPTIONKEY: 'k' })).parameterSetName).toBe('Key');
    expect(
      (await parseCommandLine(restore, ['-Name', name, '-DecryptionCertPath', '/x.pfx'], { AZSBACKUP_ENCRYPTIONKEY: 'k' }))
        .parameterSetName,
    ).toBe('Certificate');
    await expect(parseCommandLine(restore, ['-Name', name], {})).rejects.toMatchObject({ errorId: 'MissingMandatoryParameter' });
  });
});

describe('String[] parameters', () => {
  const real = loadManifestSet(fileURLToPath(new URL('../../manifests/', import.meta.url)));
  const register = real.cmdlets.find((c) => c.name === 'Register-InfrastructureRole')!;
  const base = ['-Name', 'Cfg', '-Provider', 'command', '-ImportCommand', 'true'];

  test('one occurrence is a comma-separated list, as PowerShell reads -Param a,b', async () => {
    expect((await parseCommandLine(register, [...base, '-ExportCommand', 'tar, -cf,-'])).params.ExportCommand).toEqual(['tar', '-cf', '-']);
  });

  test('one empty value is the empty list; an empty element among others is refused', async () => {
    expect((await parseCommandLine(item, ['-Tag', ''])).params.Tag).toEqual([]);
    expect((await usage(item, ['-Tag', 'red,,blue'])).errorId).toBe('ParameterArgumentValidationError');
  });

  test('several occurrences are the elements, whole: commas and spaces inside them are kept', async () => {
    const argv = ['sh', '-c', 'printf "%s, %s" a b', ' padded '];
    const cl = await parseCommandLine(register, [...base, ...argv.flatMap((a) => ['-ExportCommand:' + a])]);
    expect(cl.params.ExportCommand).toEqual(argv);
  });
});

describe('paths', () => {
  test('a relative -Path resolves against the current folder, a UNC path or a URL stays as it is', async () => {
    expect((await parseCommandLine(share, ['-Path', 'backups/here'])).params.Path).toBe(`${process.cwd()}/backups/here`);
    expect((await parseCommandLine(share, ['-Path', '\\\\fs01\\backups'])).params.Path).toBe('\\\\fs01\\backups');
    expect((await parseCommandLine(share, ['-Path', 'smb://fs01:4445/backups'])).params.Path).toBe('smb://fs01:4445/backups');
  });
});
