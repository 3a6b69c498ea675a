/**
 * HelpUri: the generated functions point Get-Help -Online at docs/POWERSHELL.md in the repository
 * that package.json names (homepage, or repository.url), and carry none when it names none. Each case
 * writes a package.json of its own, generates the module from it as the build does, and asks real
 * pwsh for (Get-Command).HelpUri.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManifestSet } from '../../src/manifest/load.js';
import { generateModule } from '../../src/psmodule/generate.js';
import { onlineHelpUri, type PackageLinks } from '../../src/psmodule/help-uri.js';
import { findPwsh, runPwsh } from '../support/pwsh.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const set = loadManifestSet(join(repo, 'manifests'));
const cmdlet = 'Get-InfrastructureBackup';

describe('onlineHelpUri', () => {
  it('takes the homepage, else the repository url, in the forms npm writes them', () => {
    expect(onlineHelpUri({ homepage: 'https://example.org/azs/azsbackup#readme' })).toBe(
      'https://example.org/azs/azsbackup/blob/main/docs/POWERSHELL.md',
    );
    expect(onlineHelpUri({ repository: { type: 'git', url: 'git+https://example.org/azs/azsbackup.git' } })).toBe(
      'https://example.org/azs/azsbackup/blob/main/docs/POWERSHELL.md',
    );
    expect(onlineHelpUri({ repository: 'https://example.org/azs/azsbackup/' })).toBe(
      'https://example.org/azs/azsbackup/blob/main/docs/POWERSHELL.md',
    );
  });

  it('gives none without an address, or with one that is not a web address', () => {
    expect(onlineHelpUri({})).toBeUndefined();
    expect(onlineHelpUri({ repository: 'github:azs/azsbackup', homepage: 42 })).toBeUndefined();
  });

  it('the repository as it is today names no address: its module carries no HelpUri', async () => {
    expect(onlineHelpUri(JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as PackageLinks)).toBeUndefined();
  });
});

describe('HelpUri in real pwsh', () => {
  let pwsh = '';
  let work = '';

  beforeAll(async () => {
    pwsh = await findPwsh();
    work = await mkdtemp(join(tmpdir(), 'azs-help-uri-'));
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Generates the module from a package.json with these fields, imports it, returns HelpUri of each name. */
  async function helpUris(name: string, links: PackageLinks, commands: string[]): Promise<string[]> {
    const packageJson = join(work, name, 'package.json');
    const moduleDir = join(work, name, 'AzsBackup');
    await mkdir(dirname(packageJson), { recursive: true });
    await writeFile(packageJson, JSON.stringify({ name: 'azsbackup', version: '1.0.0', ...links }));
    const pkg = JSON.parse(await readFile(packageJson, 'utf8')) as PackageLinks;
    await generateModule(set, {
      version: '1.0.0',
      hostPath: join(repo, 'bin', 'azsbackup.js'),
      outDir: moduleDir,
      helpUri: onlineHelpUri(pkg),
    });
    const script = [
      "$ErrorActionPreference = 'Stop'",
      'Import-Module -Name $env:AZS_MODULE',
      '$env:AZS_COMMANDS -split "," | ForEach-Object { [string](Get-Command -Name $_).HelpUri } | ConvertTo-Json -AsArray -Compress',
    ].join('\n');
    const { stdout } = await runPwsh(pwsh, script, { AZS_MODULE: join(moduleDir, 'AzsBackup.psd1'), AZS_COMMANDS: commands.join(',') });
    return JSON.parse(stdout) as string[];
  }

  it('with a homepage in package.json every function, an expanding alias too, points at docs/POWERSHELL.md there', async () => {
    const expanding = set.cmdlets.flatMap((c) => c.aliases.filter((a) => a.expandProperty !== undefined).map((a) => a.name));
    const uris = await helpUris('with', { homepage: 'https://example.org/azs/azsbackup#readme' }, [
      cmdlet,
      'Start-InfrastructureBackup',
      ...expanding,
    ]);
    expect(uris).toEqual(Array(2 + expanding.length).fill('https://example.org/azs/azsbackup/blob/main/docs/POWERSHELL.md'));
  });

  it('without a homepage or repository there is no HelpUri', async () => {
    expect(await helpUris('without', {}, [cmdlet])).toEqual(['']);
  });
});
