#!/usr/bin/env node
// npm run package:module — packs dist/powershell/AzsBackup into AzsBackup.<version>.nupkg with
// PowerShell's own Publish-PSResource, publishing into a local folder repository (dist/packages by
// default). The repository is registered in a throwaway PSResourceGet store (XDG_DATA_HOME points
// into a temp folder), so the user's own repository list is never touched.
//
// Usage: node scripts/package-module.mjs [--module DIR] [--out DIR] [--pwsh PATH]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { module: { type: 'string' }, out: { type: 'string' }, pwsh: { type: 'string' } } });
const moduleDir = resolve(values.module ?? join(repo, 'dist', 'powershell', 'AzsBackup'));
const outDir = resolve(values.out ?? join(repo, 'dist', 'packages'));

function fail(message, action) {
  process.stderr.write(`package-module: ${message}\n  ${action}\n`);
  process.exit(1);
}

const psd1 = join(moduleDir, 'AzsBackup.psd1');
if (!existsSync(psd1)) fail(`no module at ${moduleDir}.`, 'Run `npm run build` first; it generates the module from the manifests.');
const version = /ModuleVersion\s*=\s*'([^']+)'/.exec(readFileSync(psd1, 'utf8'))?.[1];
if (!version) fail(`${psd1} has no ModuleVersion.`, 'Rebuild the module with `npm run build`.');

const candidates = [values.pwsh, process.env.PWSH, join(homedir(), '.dotnet', 'tools', 'pwsh'), 'pwsh'].filter(Boolean);
const pwsh = candidates.find((c) => c === 'pwsh' || existsSync(c));

mkdirSync(outDir, { recursive: true });
const nupkg = join(outDir, `AzsBackup.${version}.nupkg`);
// Publishing refuses to overwrite a package of the same version.
rmSync(nupkg, { force: true });

const store = mkdtempSync(join(tmpdir(), 'azs-psresource-'));
// .NET resolves a special folder that does not exist to '', and PSResourceGet would then write its
// repository list into the current directory: the folders must exist first.
for (const sub of ['share', 'config', 'cache']) mkdirSync(join(store, sub), { recursive: true });
const script = `
$ErrorActionPreference = 'Stop'
$name = 'AzsBackupLocal'
Register-PSResourceRepository -Name $name -Uri $env:AZS_PACKAGE_OUT -Trusted
try {
    Publish-PSResource -Path $env:AZS_PACKAGE_MODULE -Repository $name
}
finally {
    Unregister-PSResourceRepository -Name $name
}
`;
try {
  const r = spawnSync(pwsh, ['-NoProfile', '-NonInteractive', '-Command', script], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      XDG_DATA_HOME: join(store, 'share'),
      XDG_CONFIG_HOME: join(store, 'config'),
      XDG_CACHE_HOME: join(store, 'cache'),
      AZS_PACKAGE_OUT: outDir,
      AZS_PACKAGE_MODULE: moduleDir,
    },
  });
  if (r.error) fail(`cannot run ${pwsh}: ${r.error.message}`, 'Run `bash scripts/setup-powershell.sh` to install PowerShell 7.');
  if (r.status !== 0)
    fail(
      `Publish-PSResource failed (exit ${r.status}).`,
      'Read the PowerShell error above; Test-ModuleManifest on the .psd1 shows manifest problems.',
    );
} finally {
  rmSync(store, { recursive: true, force: true });
}
if (!existsSync(nupkg)) fail(`Publish-PSResource did not write ${nupkg}.`, 'Check the module name and version in the .psd1.');
process.stdout.write(`${nupkg}\n`);
