/**
 * Every cmdlet of the manifests, run for real from the command line in each output format, and its
 * help. The CLIXML of each is checked against PowerShell's rules: the `#< CLIXML` line, then one
 * well-formed <Objs Version="1.1.0.1"> document per line, each object typed with the manifest's
 * output type over PSCustomObject and Object. Needs `npm run build`.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManifestSet } from '../../src/manifest/load.js';
import { makeDrill, runCli, type CliResult, type Drill } from '../support/cli.js';

const manifests = loadManifestSet(fileURLToPath(new URL('../../manifests/', import.meta.url)));
const formats = ['json', 'clixml', 'table', 'list'] as const;
type Format = (typeof formats)[number];

let drill: Drill;
const backups: string[] = [];

/** How to call each cmdlet so that it does its real work and returns objects. */
function invocation(name: string, format: Format): { args: string[]; stdin?: string; home?: string } {
  const key = { stdin: `${drill.key}\n` };
  const extra = join(drill.root, 'extra-role');
  switch (name) {
    case 'New-EncryptionKey':
      return { args: [] };
    case 'Set-BackupShare':
      return { args: ['-BackupFrequencyInHours', '6', '-IsBackupSchedulerEnabled', '$true'] };
    case 'Get-BackupConfiguration':
      return { args: [] };
    case 'Clear-BackupConfiguration':
      return { args: ['-Confirm:$false'], home: join(drill.root, `clear-${format}`) };
    case 'Test-BackupShare':
      return { args: [] };
    case 'Test-BackupRepository':
      return { args: [] };
    case 'Register-InfrastructureRole':
      return { args: ['-Name', `Extra${format}`, '-Provider', 'directory', '-Path', extra] };
    case 'Get-InfrastructureRole':
      return { args: [] };
    case 'Unregister-InfrastructureRole':
      return { args: ['-Name', `Extra${format}`, '-PassThru'] };
    case 'Start-InfrastructureBackup':
      return { args: ['-RoleName', 'Files'] };
    case 'Get-InfrastructureBackup':
      return { args: ['-Top', '2'] };
    case 'Test-InfrastructureBackup':
      return { args: ['-Name', backups[0]!, '-EncryptionKey', '-'], ...key };
    case 'Restore-AzsBackup':
      return { args: ['-Name', backups[0]!, '-RoleName', 'Files', '-EncryptionKey', '-'], ...key };
    case 'Invoke-BackupPrune':
      return { args: ['-DryRun'] };
    case 'Remove-InfrastructureBackup':
      return { args: ['-Name', backups.pop()!, '-PassThru', '-Confirm:$false'] };
    case 'Get-BackupAlert':
      return { args: [] };
    case 'Invoke-BackupScheduler':
      return { args: [] };
    case 'Update-BackupEncryption':
      return { args: ['-Name', backups[0]!, '-EncryptionKey', '-'], ...key };
    default:
      throw new Error(`no invocation for ${name}: add one`);
  }
}

/** Checks one CLIXML output and returns the type names of its top-level objects. */
function checkClixml(out: string): string[] {
  if (out === '') return [];
  const lines = out.replace(/\n$/, '').split('\n');
  expect(lines[0]).toBe('#< CLIXML');
  const parser = new XMLParser({ ignoreAttributes: false, isArray: (n) => n === 'T' || n === 'Obj' });
  return lines.slice(1).map((line) => {
    expect(XMLValidator.validate(line)).toBe(true);
    expect(line).toMatch(/^<Objs Version="1\.1\.0\.1" xmlns="http:\/\/schemas\.microsoft\.com\/powershell\/2004\/04">/);
    // Raw control characters never appear: PowerShell's encoding writes them as _xHHHH_.
    expect(line).not.toMatch(/[\u0000-\u001f]/);
    const obj = parser.parse(line).Objs.Obj[0];
    const names = obj.TN.T as string[];
    expect(names.slice(1)).toEqual(['System.Management.Automation.PSCustomObject', 'System.Object']);
    return names[0]!;
  });
}

beforeAll(async () => {
  drill = await makeDrill();
  mkdirSync(join(drill.root, 'extra-role'));
  // Backups to check, restore, re-wrap and remove (one removed per format), and a partial one so
  // Get-BackupAlert has an alert to show.
  for (let i = 0; i < 5; i++) backups.push((await drill.backup(['-RoleName', 'Files'])).Name);
  await drill.registerCommand('Broken', ['sh', '-c', 'echo broken >&2; exit 3'], ['true']);
  expect((await drill.cli(['Start-InfrastructureBackup'])).code).toBe(3);
  expect((await drill.cli(['Unregister-InfrastructureRole', '-Name', 'Broken'])).code).toBe(0);
}, 300_000);
afterAll(async () => drill?.cleanup());

describe('every cmdlet from the command line', () => {
  for (const m of manifests.cmdlets) {
    it(`${m.name}: help from its manifest`, async () => {
      const r = await runCli(drill.home, [m.name, '-?']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(m.synopsis.slice(0, 40));
      for (const p of m.parameters) expect(r.stdout).toContain(`-${p.name}`);
    });

    it(`${m.name}: works in all four output formats`, async () => {
      const results: Record<Format, CliResult> = {} as Record<Format, CliResult>;
      for (const format of formats) {
        const call = invocation(m.name, format);
        const r = await runCli(call.home ?? drill.home, [m.name, ...call.args, '--output', format], { stdin: call.stdin });
        expect(r.code, `${m.name} --output ${format}: ${r.stderr}`).toBe(0);
        results[format] = r;
      }
      const json = results.json.stdout.trim() === '' ? [] : [JSON.parse(results.json.stdout)].flat();
      for (const o of json) for (const k of Object.keys(o)) expect(k[0]).toBe(k[0]!.toUpperCase());
      const types = checkClixml(results.clixml.stdout);
      expect(types).toHaveLength(json.length);
      for (const t of types) expect(t).toBe(m.outputType);
      if (json.length > 0) {
        const firstColumn = manifests.types.get(m.outputType!)!.tableColumns[0]!;
        expect(results.table.stdout).toContain(firstColumn);
        expect(results.list.stdout).toMatch(new RegExp(`^${firstColumn}\\s+:`, 'm'));
      } else {
        // Cmdlets that legitimately return nothing here: the scheduler when no backup is due.
        expect(m.name).toBe('Invoke-BackupScheduler');
      }
    }, 120_000);
  }
});
