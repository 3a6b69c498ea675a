/** AzsBackup.psd1: the module manifest a gallery would accept. */
import { AzsError } from '../errors.js';
import type { CmdletManifest } from '../manifest/model.js';
import { psQuote, psStringArray } from './powershell.js';
import { exportedNames } from './psm1.js';

/** Fixed for the life of the module: PowerShellGet identifies a module by name and GUID. */
export const moduleGuid = '4f5c8a3e-2b1d-4e6f-9a7c-3d8e1f0b6a52';

export const moduleName = 'AzsBackup';

export function generatePsd1(cmdlets: readonly CmdletManifest[], version: string, extraFiles: readonly string[] = []): string {
  // ModuleVersion is a System.Version; a semver pre-release tag goes to PSData.Prerelease.
  const [core, prerelease] = splitVersion(version);
  const { functions, aliases } = exportedNames(cmdlets);
  const list = (items: readonly string[]) =>
    items.length === 0 ? '@()' : `@(\n${items.map((i) => `        ${psQuote(i)}`).join('\n')}\n    )`;
  return `# Generated from the manifests by src/psmodule; do not edit.
@{
    RootModule = 'AzsBackup.psm1'
    ModuleVersion = ${psQuote(core)}
    GUID = ${psQuote(moduleGuid)}
    Author = 'AzsBackup contributors'
    CompanyName = 'AzsBackup contributors'
    Copyright = '(c) AzsBackup contributors. Released under the MIT License.'
    Description = 'Infrastructure backup for a self-hosted cloud: configure an SMB backup share with a credential and an encryption certificate, run and schedule encrypted backups of the infrastructure roles, test them, and restore them on a redeployed machine.'
    PowerShellVersion = '7.2'
    CompatiblePSEditions = ${psStringArray(['Core'])}
    FunctionsToExport = ${list(functions)}
    CmdletsToExport = @()
    VariablesToExport = @()
    AliasesToExport = ${list(aliases)}
    FormatsToProcess = ${psStringArray(['AzsBackup.format.ps1xml'])}
    FileList = ${psStringArray(['AzsBackup.psd1', 'AzsBackup.psm1', 'AzsBackup.format.ps1xml', 'en-US/AzsBackup-help.xml', ...extraFiles])}
    PrivateData = @{
        PSData = @{
            Tags = ${psStringArray(['Backup', 'Restore', 'Encryption', 'SMB', 'AzureStack', 'Infrastructure', 'PSEdition_Core', 'Linux'])}
            LicenseUri = 'https://opensource.org/licenses/MIT'
${prerelease ? `            Prerelease = ${psQuote(prerelease)}\n` : ''}            ReleaseNotes = 'Generated from the AzsBackup manifests, version ${version.replace(/'/g, "''")}.'
        }
    }
}
`;
}

function splitVersion(version: string): [string, string | undefined] {
  const m = /^(\d+\.\d+\.\d+)(?:-([0-9A-Za-z]+))?$/.exec(version);
  if (!m) {
    throw new AzsError(`Version '${version}' is not major.minor.patch with an optional alphanumeric pre-release tag.`, {
      errorId: 'PsModuleInvalidVersion',
      category: 'InvalidArgument',
      targetObject: version,
      recommendedAction: 'Set "version" in package.json to a version such as 1.2.3 or 1.2.3-beta1.',
    });
  }
  return [m[1]!, m[2]];
}
