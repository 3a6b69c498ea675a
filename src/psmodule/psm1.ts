/** AzsBackup.psm1: the private helper, then one advanced function per cmdlet, sorted by name. */
import type { CmdletManifest } from '../manifest/model.js';
import { generateFunction } from './functions.js';
import { psStringArray } from './powershell.js';
import { runtimeSource } from './runtime.js';

export function generatePsm1(cmdlets: readonly CmdletManifest[], hostPath: string): string {
  const sorted = [...cmdlets].sort((a, b) => a.name.localeCompare(b.name, 'en'));
  return [
    '# Generated from the manifests by src/psmodule; do not edit. Rebuild with `npm run build`.',
    '#Requires -Version 7.2',
    runtimeSource(hostPath),
    ...sorted.map(generateFunction),
    `Export-ModuleMember -Function ${psStringArray(sorted.map((c) => c.name))}`,
    '',
  ].join('\n');
}
