/**
 * The private part of AzsBackup.psm1, kept as PowerShell in AzsBackup.Runtime.ps1 beside this file
 * (so an editor, PowerShell's parser and Pester see it as what it is). The bundler embeds the file
 * as text (loader '.ps1': 'text' in scripts/bundle-options.mjs; vitest.config.ts does the same), and
 * the generator puts it in the module after the two values only the build knows.
 */
import { remoteLocation } from '../manifest/model.js';
import { psQuote } from './powershell.js';
import runtime from './AzsBackup.Runtime.ps1';

export function runtimeSource(hostPath: string): string {
  return [
    '',
    '# Recorded at build time; $env:AZSBACKUP_CLI overrides it, and azsbackup on PATH is the fallback.',
    `$script:AzsBackupHostPath = ${psQuote(hostPath)}`,
    '# A path parameter matching this (a UNC path, a URL) stays as given; any other resolves against the location.',
    `$script:AzsBackupRemoteLocation = ${psQuote(remoteLocation.source)}`,
    '',
    runtime.replace(/\r\n/g, '\n'),
  ].join('\n');
}
