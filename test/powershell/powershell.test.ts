/**
 * The PowerShell module in real pwsh: generates the module from the manifests into a temp folder,
 * then runs each Pester file in test/powershell/ in its own pwsh and fails when Pester reports a
 * failure. pwsh 7.6.9 and Pester 5.7.1 are installed by scripts/setup-powershell.sh when missing.
 *
 * Secrets (the Samba password) reach Pester through a 0600 file named in the environment, never
 * through argv or an environment variable, because one of the Pester tests samples every process's
 * command line and environment for them.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { compileManifests, loadManifestSet } from '../../src/manifest/load.js';
import type { CmdletManifest, ManifestSet, TypeDef } from '../../src/manifest/model.js';
import { generateModule, renderModule } from '../../src/psmodule/generate.js';

const run = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pesterDir = join(repo, 'test', 'powershell');
// Overridable so the generator can be exercised against another manifests folder while developing.
const manifestsDir = process.env.AZSBACKUP_TEST_MANIFESTS_DIR ?? join(repo, 'manifests');
const pesterFiles = existsSync(pesterDir)
  ? readdirSync(pesterDir)
      .filter((f) => f.endsWith('.Tests.ps1'))
      .sort()
  : [];
const version = (JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { version: string }).version;

interface PesterSummary {
  Result: string;
  Passed: number;
  Failed: number;
  Skipped: number;
  NotRun: number;
  Total: number;
  FailedBlocks: number;
  FailedContainers: number;
  Failures: { Name: string; Message: string }[];
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...(await listFiles(join(dir, e.name), `${prefix}${e.name}/`)));
    else out.push(`${prefix}${e.name}`);
  }
  return out.sort();
}

describe('PowerShell module generator (no pwsh)', () => {
  const cmdlet = (over: Partial<CmdletManifest> = {}): CmdletManifest => ({
    name: 'Get-Thing',
    verb: 'Get',
    noun: 'Thing',
    file: 'Get-Thing.xml',
    synopsis: 'Gets a thing.',
    description: 'Gets it.',
    parameterSets: ['Default'],
    defaultParameterSet: 'Default',
    supportsShouldProcess: false,
    confirmImpact: 'Medium',
    outputType: 'AzsBackup.Thing',
    reportsProgress: false,
    output: 'Single',
    singleInput: false,
    aliases: [],
    examples: [{ title: 'One', code: 'Get-Thing', remarks: 'It.', shell: 'Both' }],
    parameters: [
      {
        name: 'Name',
        type: 'String',
        aliases: [],
        secret: false,
        validation: {},
        help: 'The name.',
        sets: [{ set: 'Default', mandatory: false, valueFromPipelineByPropertyName: false }],
      },
    ],
    ...over,
  });
  const types = (over: Partial<TypeDef> = {}): ManifestSet['types'] =>
    new Map([
      ['AzsBackup.Thing', { name: 'AzsBackup.Thing', properties: [{ name: 'Name', type: 'String' }], tableColumns: ['Name'], ...over }],
    ]);
  const opts = { version: '1.2.3', hostPath: '/opt/azsbackup/bin/azsbackup.js' };

  it('renders the same bytes twice, in sorted order, with no timestamps', () => {
    const set: ManifestSet = { cmdlets: [cmdlet({ name: 'Set-Thing', verb: 'Set' }), cmdlet()], types: types() };
    const a = renderModule(set, opts);
    const b = renderModule({ cmdlets: [...set.cmdlets].reverse(), types: set.types }, opts);
    expect([...a.entries()]).toEqual([...b.entries()]);
    const psm1 = a.get('AzsBackup.psm1')!;
    expect(psm1.indexOf('function Get-Thing')).toBeLessThan(psm1.indexOf('function Set-Thing'));
    expect([...a.values()].join('')).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:/);
  });

  it('escapes quotes in manifest text instead of letting it become code', () => {
    const set: ManifestSet = {
      cmdlets: [
        cmdlet({ parameters: [{ ...cmdlet().parameters[0]!, validation: { pattern: "^a'b\u2019c$", set: ["x'); Remove-Item /; ('"] } }] }),
      ],
      types: types(),
    };
    const psm1 = renderModule(set, opts).get('AzsBackup.psm1')!;
    expect(psm1).toContain("[ValidatePattern('^a''b\u2019\u2019c$')]");
    expect(psm1).toContain("[ValidateSet('x''); Remove-Item /; (''')]");
    const maml = renderModule({ ...set, cmdlets: [cmdlet({ synopsis: 'a < b & "c"' })] }, opts).get('en-US/AzsBackup-help.xml')!;
    expect(maml).toContain('a &lt; b &amp; &quot;c&quot;');
  });

  it.each([
    ['a parameter name that is not an identifier', { parameters: [{ ...cmdlet().parameters[0]!, name: 'Na me' }] }, 'PsModuleInvalidName'],
    [
      'a parameter that clashes with a common parameter',
      { parameters: [{ ...cmdlet().parameters[0]!, name: 'Verbose' }] },
      'PsModuleInvalidManifest',
    ],
    [
      'an alias that clashes with a common parameter alias',
      { parameters: [{ ...cmdlet().parameters[0]!, aliases: ['ea'] }] },
      'PsModuleInvalidManifest',
    ],
    ['a parameter in no set', { parameters: [{ ...cmdlet().parameters[0]!, sets: [] }] }, 'PsModuleInvalidManifest'],
    ['a control character in help text', { synopsis: 'bad \u0001 text' }, 'PsModuleInvalidXmlText'],
  ] as const)('refuses %s with a clear error', (_what, over, errorId) => {
    const render = () => renderModule({ cmdlets: [cmdlet(over as Partial<CmdletManifest>)], types: types() }, opts);
    expect(render).toThrow(AzsError);
    try {
      render();
    } catch (e) {
      expect((e as AzsError).errorId).toBe(errorId);
      expect((e as AzsError).message.length).toBeGreaterThan(20);
    }
  });

  it('refuses a table column that is not a property, and a version that is not semver', () => {
    expect(() => renderModule({ cmdlets: [cmdlet()], types: types({ tableColumns: ['Nope'] }) }, opts)).toThrow(/Nope/);
    expect(() => renderModule({ cmdlets: [cmdlet()], types: types() }, { ...opts, version: 'latest' })).toThrow(/major\.minor\.patch/);
  });

  it('writes the same bytes on two builds of the real manifests, and replaces a stale module folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'azs-psgen-'));
    try {
      const set = loadManifestSet(manifestsDir);
      const one = join(dir, 'one', 'AzsBackup');
      const two = join(dir, 'two', 'AzsBackup');
      await generateModule(set, { version, hostPath: join(repo, 'bin', 'azsbackup.js'), outDir: one });
      await writeFile(join(dir, 'two', 'stale.txt'), 'x').catch(() => undefined);
      await generateModule(set, { version, hostPath: join(repo, 'bin', 'azsbackup.js'), outDir: two });
      await writeFile(join(two, 'stale.ps1'), 'x');
      await generateModule(set, { version, hostPath: join(repo, 'bin', 'azsbackup.js'), outDir: two });
      const files = await listFiles(one);
      expect(files).toEqual([
        'AzsBackup.format.ps1xml',
        'AzsBackup.psd1',
        'AzsBackup.psm1',
        'en-US/AzsBackup-help.xml',
        'en-US/about_AzsBackup.help.txt',
      ]);
      expect(await listFiles(two)).toEqual(files);
      for (const f of files) expect(await readFile(join(two, f))).toEqual(await readFile(join(one, f)));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('PowerShell module in real pwsh (Pester)', () => {
  let work = '';
  let pwsh = '';
  let pester = '';
  let samba: { stop(): Promise<void> } | undefined;
  const env: Record<string, string> = {};

  beforeAll(async () => {
    const setup = await run('bash', [join(repo, 'scripts', 'setup-powershell.sh')], { maxBuffer: 16 << 20 });
    pwsh = /^PWSH=(.*)$/m.exec(setup.stdout)![1]!;
    pester = /^PESTER=(.*)$/m.exec(setup.stdout)![1]!;
    work = await mkdtemp(join(tmpdir(), 'azs-pester-'));
    const manifestsJson = join(work, 'manifests.json');
    compileManifests(manifestsDir, manifestsJson);
    const moduleDir = join(work, 'module', 'AzsBackup');
    await generateModule(loadManifestSet(manifestsDir), { version, hostPath: join(repo, 'bin', 'azsbackup.js'), outDir: moduleDir });
    const secrets: Record<string, string> = {};
    Object.assign(env, {
      AZSBACKUP_TEST_REPO: repo,
      AZSBACKUP_TEST_WORK: work,
      AZSBACKUP_TEST_MODULE: join(moduleDir, 'AzsBackup.psd1'),
      AZSBACKUP_TEST_MANIFESTS: manifestsJson,
      AZSBACKUP_TEST_FIXTURES: join(repo, 'test', 'fixtures', 'psmodule'),
      AZSBACKUP_TEST_HOST: join(repo, 'bin', 'azsbackup.js'),
      AZSBACKUP_TEST_HOST_BUILT: existsSync(join(repo, 'dist', 'host', 'main.js')) ? '1' : '0',
    });
    // Samba is only needed by the operator's drill; a missing helper leaves those tests to fail loudly.
    const sambaHelper = join(repo, 'test', 'support', 'samba.ts');
    if (existsSync(sambaHelper)) {
      try {
        const { startSamba } = (await import(pathToFileURL(sambaHelper).href)) as {
          startSamba(): Promise<{
            host: string;
            port: number;
            share: string;
            userName: string;
            password: string;
            root: string;
            unc: string;
            smbUrl: string;
            stop(): Promise<void>;
          }>;
        };
        const s = await startSamba();
        samba = s;
        Object.assign(env, {
          AZSBACKUP_TEST_SMB_UNC: s.unc,
          AZSBACKUP_TEST_SMB_URL: s.smbUrl,
          AZSBACKUP_TEST_SMB_USER: s.userName,
          AZSBACKUP_TEST_SMB_ROOT: s.root,
        });
        secrets.SmbPassword = s.password;
      } catch (e) {
        env.AZSBACKUP_TEST_SMB_ERROR = `Samba did not start: ${(e as Error).message}`;
      }
    } else {
      env.AZSBACKUP_TEST_SMB_ERROR = 'test/support/samba.ts is missing';
    }
    const secretsFile = join(work, 'secrets.json');
    await writeFile(secretsFile, JSON.stringify(secrets), { mode: 0o600 });
    env.AZSBACKUP_TEST_SECRETS_FILE = secretsFile;
  });

  afterAll(async () => {
    await samba?.stop().catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  const runner = [
    "$ErrorActionPreference = 'Stop'",
    'Import-Module $env:AZSBACKUP_TEST_PESTER -Force',
    '$c = New-PesterConfiguration',
    '$c.Run.Path = $env:AZSBACKUP_TEST_FILE',
    '$c.Run.PassThru = $true',
    "$c.Output.Verbosity = 'Detailed'",
    "$c.Output.RenderMode = 'Plaintext'",
    '$r = Invoke-Pester -Configuration $c',
    '$failures = @($r.Failed | ForEach-Object { @{ Name = $_.ExpandedPath; Message = (@($_.ErrorRecord | ForEach-Object { ' +
      '$_.DisplayErrorMessage }) -join [Environment]::NewLine) } })',
    '$failures += @($r.FailedBlocks | ForEach-Object { @{ Name = $_.ExpandedPath + " (block)"; Message = (@($_.ErrorRecord | ' +
      'ForEach-Object { $_.DisplayErrorMessage }) -join [Environment]::NewLine) } })',
    '$failures += @($r.FailedContainers | ForEach-Object { @{ Name = [string]$_.Item + " (file)"; Message = (@($_.ErrorRecord | ' +
      'ForEach-Object { $_.DisplayErrorMessage }) -join [Environment]::NewLine) } })',
    '@{ Result = $r.Result; Passed = $r.PassedCount; Failed = $r.FailedCount; Skipped = $r.SkippedCount; NotRun = $r.NotRunCount; ' +
      'Total = $r.TotalCount; FailedBlocks = $r.FailedBlocksCount; FailedContainers = $r.FailedContainersCount; Failures = $failures } ' +
      '| ConvertTo-Json -Depth 6 | Set-Content -LiteralPath $env:AZSBACKUP_TEST_RESULT',
  ].join('\n');

  it('has Pester files to run', () => {
    expect(pesterFiles).toContain('Module.Tests.ps1');
  });

  it.each(pesterFiles)(
    'Pester: %s',
    async (file) => {
      const result = join(work, `${file}.result.json`);
      const child = await run(pwsh, ['-NoProfile', '-NonInteractive', '-Command', runner], {
        env: {
          ...process.env,
          ...env,
          AZSBACKUP_TEST_PESTER: pester,
          AZSBACKUP_TEST_PWSH: pwsh,
          AZSBACKUP_TEST_FILE: join(pesterDir, file),
          AZSBACKUP_TEST_RESULT: result,
        },
        maxBuffer: 64 << 20,
        timeout: 900_000,
      }).catch((e: { stdout?: string; stderr?: string; message: string }) => ({
        stdout: e.stdout ?? '',
        stderr: `${e.stderr ?? ''}\n${e.message}`,
      }));
      if (process.env.AZSBACKUP_PESTER_VERBOSE || !existsSync(result)) process.stdout.write(child.stdout + child.stderr);
      expect(existsSync(result), `Pester wrote no result for ${file}:\n${child.stdout}\n${child.stderr}`).toBe(true);
      const summary = JSON.parse((await readFile(result, 'utf8')).replace(/^\uFEFF/, '')) as PesterSummary;
      const failures = (summary.Failures ?? []).map((f) => `- ${f.Name}\n    ${f.Message.replace(/\n/g, '\n    ')}`).join('\n');
      expect(summary.Failed + summary.FailedBlocks + summary.FailedContainers, `${file}: ${summary.Failed} failed\n${failures}`).toBe(0);
      expect(summary.Passed, `${file} ran no test`).toBeGreaterThan(0);
    },
    1_000_000,
  );
});
