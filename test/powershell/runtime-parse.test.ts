/**
 * The module's PowerShell runtime, src/psmodule/AzsBackup.Runtime.ps1, read by PowerShell's own
 * parser: a syntax error fails here, with its line, before any Pester suite imports the module.
 * Also checks that the generated AzsBackup.psm1 embeds it whole and parses too.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManifestSet } from '../../src/manifest/load.js';
import { renderModule } from '../../src/psmodule/generate.js';
import { findPwsh, runPwsh } from '../support/pwsh.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const runtimeFile = join(repo, 'src', 'psmodule', 'AzsBackup.Runtime.ps1');

// Prints one line per parse error ("line:column message") and the names of the functions and
// classes the file defines, as JSON.
const parseScript = `
$tokens = $null; $errors = $null
$ast = [System.Management.Automation.Language.Parser]::ParseFile($env:AZS_PARSE_FILE, [ref]$tokens, [ref]$errors)
$defined = $ast.FindAll({ param($n) $n -is [System.Management.Automation.Language.FunctionDefinitionAst] -or $n -is [System.Management.Automation.Language.TypeDefinitionAst] }, $false) | ForEach-Object { $_.Name }
[pscustomobject]@{
    Errors = @($errors | ForEach-Object { '{0}:{1} {2}' -f $_.Extent.StartLineNumber, $_.Extent.StartColumnNumber, $_.Message })
    Defined = @($defined)
} | ConvertTo-Json -Compress
`;

describe('the PowerShell runtime as PowerShell', () => {
  let pwsh = '';
  let work = '';
  const parse = async (file: string) =>
    JSON.parse((await runPwsh(pwsh, parseScript, { AZS_PARSE_FILE: file })).stdout) as { Errors: string[]; Defined: string[] };

  beforeAll(async () => {
    pwsh = await findPwsh();
    work = await mkdtemp(join(tmpdir(), 'azs-runtime-parse-'));
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('AzsBackup.Runtime.ps1 parses without errors and defines the helpers the functions call', async () => {
    const parsed = await parse(runtimeFile);
    expect(parsed.Errors).toEqual([]);
    expect(parsed.Defined).toEqual(expect.arrayContaining(['AzsBackupPathAttribute', 'Get-AzsBackupCompletion', 'Invoke-AzsBackupHost']));
  });

  it('the generated psm1 embeds the runtime whole, after the two values of the build, and parses', async () => {
    const psm1 = renderModule(loadManifestSet(join(repo, 'manifests')), { version: '1.2.3', hostPath: '/opt/azs/bin/azsbackup.js' }).get(
      'AzsBackup.psm1',
    )!;
    expect(psm1).toContain((await readFile(runtimeFile, 'utf8')).replace(/\r\n/g, '\n'));
    expect(psm1).toMatch(/^\$script:AzsBackupHostPath = '\/opt\/azs\/bin\/azsbackup\.js'$/m);
    expect(psm1).toMatch(/^\$script:AzsBackupRemoteLocation = '.+'$/m);
    const file = join(work, 'AzsBackup.psm1');
    await writeFile(file, psm1);
    expect((await parse(file)).Errors).toEqual([]);
  });
});
