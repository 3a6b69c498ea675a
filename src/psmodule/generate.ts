/**
 * The PowerShell module generator: manifests in, dist/powershell/AzsBackup out. Pure and
 * deterministic (sorted, no timestamps, LF), so two builds give the same bytes.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManifestSet } from '../manifest/model.js';
import { generateFormat } from './format.js';
import { generateMaml } from './maml.js';
import { generatePsd1, moduleName } from './psd1.js';
import { generatePsm1 } from './psm1.js';

export interface GenerateModuleOptions {
  /** The module version (package.json's version). */
  version: string;
  /** The host the module runs unless $env:AZSBACKUP_CLI says otherwise (bin/azsbackup.js or an executable). */
  hostPath: string;
  /** Where Get-Help -Online goes (onlineHelpUri of package.json); none when the project has no address. */
  helpUri?: string;
  /** The module folder to (re)create, e.g. dist/powershell/AzsBackup. */
  outDir: string;
}

/** File name (relative to the module folder, '/'-separated) → content. */
export function renderModule(set: ManifestSet, opts: Omit<GenerateModuleOptions, 'outDir'>): Map<string, string> {
  const about =
    set.about === undefined ? [] : [[`en-US/about_${moduleName}.help.txt`, set.about.replace(/\r\n/g, '\n')] as [string, string]];
  return new Map([
    [
      `${moduleName}.psd1`,
      generatePsd1(
        set.cmdlets,
        opts.version,
        about.map(([name]) => name),
      ),
    ],
    [`${moduleName}.psm1`, generatePsm1(set.cmdlets, opts.hostPath, set.types, opts.helpUri)],
    [`${moduleName}.format.ps1xml`, generateFormat(set.types)],
    [`en-US/${moduleName}-help.xml`, generateMaml(set.cmdlets)],
    ...about,
  ]);
}

export async function generateModule(set: ManifestSet, opts: GenerateModuleOptions): Promise<void> {
  const files = renderModule(set, opts);
  // A stale file from an earlier build (a removed cmdlet's help) must not survive into the package.
  await rm(opts.outDir, { recursive: true, force: true });
  for (const [name, content] of files) {
    const file = join(opts.outDir, ...name.split('/'));
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, content, 'utf8');
  }
}
