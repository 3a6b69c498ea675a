import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { formatHelp, syntaxLines } from '../../src/host/help.js';
import { resolveHome } from '../../src/host/home.js';
import { main, type HostIO } from '../../src/host/main.js';
import { terminalProgress } from '../../src/host/progress.js';
import { loadManifestSet } from '../../src/manifest/load.js';

const fixtures = fileURLToPath(new URL('../fixtures/host/', import.meta.url));
const temp = mkdtempSync(join(tmpdir(), 'azs-host-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

interface Run {
  code: number;
  out: string;
  err: string;
}

async function run(args: string[], opts: Partial<HostIO> & { input?: string } = {}): Promise<Run> {
  const stdin = new PassThrough() as PassThrough & { setRawMode?: (m: boolean) => void };
  if (opts.stdinIsTTY) stdin.setRawMode = () => {};
  stdin.end(opts.input ?? '');
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const { input: _input, ...rest } = opts;
  const code = await main(args, {
    stdin,
    stdout,
    stderr,
    env: { AZSBACKUP_HOME: join(temp, 'home') },
    stdinIsTTY: false,
    stdoutIsTTY: false,
    stderrIsTTY: false,
    manifestsDir: `${fixtures}manifests`,
    cmdletsDir: `${fixtures}cmdlets`,
    ...rest,
  });
  return { code, out, err };
}

const set = loadManifestSet(`${fixtures}manifests`);
const share = set.cmdlets.find((c) => c.name === 'Set-TestShare')!;

describe('help from the manifest', () => {
  test('syntax per parameter set, in PowerShell style', () => {
    expect(syntaxLines(share)).toEqual([
      'Set-TestShare [-Path] <String> [-Credential <PSCredential>] [-EncryptionKey <SecureString>] [-BackupFrequencyInHours <Int32>] ' +
        '[-BackupRetentionPeriodInDays <Int32>] [-Mode <String>] [-IsEnabled <Boolean>] [-SkipValidation] [-WhatIf] [-Confirm] ' +
        '[<CommonParameters>]',
      'Set-TestShare [-Path] <String> -EncryptionCertPath <String> [-Credential <PSCredential>] [-BackupFrequencyInHours <Int32>] ' +
        '[-BackupRetentionPeriodInDays <Int32>] [-Mode <String>] [-IsEnabled <Boolean>] [-SkipValidation] [-WhatIf] [-Confirm] ' +
        '[<CommonParameters>]',
    ]);
    const item = set.cmdlets.find((c) => c.name === 'Get-TestItem')!;
    expect(syntaxLines(item)[1]).toMatch(/^Get-TestItem \[-Name\] <String> \[-Id <Guid>\]/);
  });

  test.each([['-?'], ['--help'], ['-Help']])(
    '`Set-TestShare %s` prints synopsis, syntax, description, parameters and examples',
    async (flag) => {
      const r = await run(['set-testshare', flag]);
      expect(r.code).toBe(0);
      const text = r.out;
      for (const part of [
        'NAME\n    Set-TestShare',
        'SYNOPSIS\n    Configures the test share.',
        'SYNTAX\n    Set-TestShare [-Path] <String>',
        'DESCRIPTION\n    First paragraph of the description.\n\n    Second paragraph.',
        'PARAMETERS\n    -Path <String>',
        'Aliases                   SharePath, Share',
        'Range                     4 to 12',
        'Accepted values           Fast, Thorough',
        'AZSBACKUP_ENCRYPTIONKEY',
        '    -WhatIf',
        '<CommonParameters>',
        '-Verbose writes what the cmdlet does',
        'EXAMPLES\n    ---------- Example 1: Point at a share ----------',
        'Set-TestShare -Path \\\\fs01\\backups -EncryptionKey -',
        'OUTPUTS\n    Test.Echo',
      ]) {
        expect(text).toContain(part);
      }
      expect(formatHelp(share)).toBe(text);
    },
  );

  test('no arguments and --help list the cmdlets with synopses', async () => {
    for (const args of [[], ['--help']]) {
      const r = await run(args);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/Get-TestItem\s+Lists or gets test items\./);
      expect(r.out).toMatch(/Set-TestShare\s+Configures the test share\./);
    }
  });

  test('an unknown cmdlet exits 2 with close matches', async () => {
    const r = await run(['Get-TestItems']);
    expect(r.code).toBe(2);
    const rec = JSON.parse(r.err).ErrorRecord;
    expect(rec.Message).toMatch(/'Get-TestItems' is not recognized.*Did you mean Get-TestItem/);
  });
});

describe('errors', () => {
  test('on a terminal, a readable line with the cmdlet name and the recommended action', async () => {
    const r = await run(['Set-TestShare', '/x', '-BackupFrequencyInHours', '20'], { stderrIsTTY: true });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^Set-TestShare: Cannot validate argument on parameter 'BackupFrequencyInHours'\./);
    expect(r.err).toContain('    RecommendedAction: Supply an argument that is less than or equal to 12');
    expect(r.err).not.toContain('\u001b[');
  });

  test('an unexpected error is an internal error with its stack and where to report it', async () => {
    const r = await run(['Invoke-TestJob', 'crash'], { stderrIsTTY: true });
    expect(r.code).toBe(1);
    expect(r.err).toContain('Invoke-TestJob: internal error: boom');
    expect(r.err).toContain('at invokeTestJob');
    expect(r.err).toMatch(/please report this at (https?:\/\/\S+|the AzsBackup issue tracker)/);
  });

  test('non-terminating errors make exit 3 unless the cmdlet sets the code', async () => {
    const r = await run(['Invoke-TestJob', 'partial']);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.err).ErrorRecord).toMatchObject({ ErrorId: 'RoleFailed', Terminating: false });
    expect(JSON.parse(r.out)).toMatchObject({ Name: 'partial' });
    expect((await run(['Invoke-TestJob', 'partial-exit'])).code).toBe(0);
  });

  test('an AzsError maps to its exit code', async () => {
    const r = await run(['Invoke-TestJob', 'notfound']);
    expect(r.code).toBe(10);
    expect(JSON.parse(r.err).ErrorRecord).toMatchObject({
      ErrorId: 'ShareNotFound',
      Category: 'ObjectNotFound',
      ExitCode: 10,
      Terminating: true,
    });
  });

  test('an aborted run exits 130', async () => {
    const ac = new AbortController();
    const p = run(['Invoke-TestJob', 'wait', '--progress', 'json'], { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    const r = await p;
    expect(r.code).toBe(130);
    expect(r.err).toContain('"ErrorId":"PipelineStopped"');
  });
});

describe('output', () => {
  test('json when stdout is not a terminal, list on a terminal, or as asked', async () => {
    const json = await run(['Invoke-TestJob', 'ok']);
    expect(JSON.parse(json.out)).toEqual([
      { Name: 'a', Size: 1 },
      { Name: '|', Size: 2 },
    ]);
    const list = await run(['Invoke-TestJob', 'ok'], { stdoutIsTTY: true });
    expect(list.out).toMatch(/Name\s*: a/);
    const clixml = await run(['Invoke-TestJob', 'ok', '--output', 'clixml']);
    expect(clixml.out.split('\n')[0]).toBe('#< CLIXML');
    const none = await run(['Invoke-TestJob', 'none']);
    expect([none.code, none.out]).toEqual([0, '']);
  });

  test('--progress json writes progress records on stderr; nothing without a terminal otherwise', async () => {
    const r = await run(['Invoke-TestJob', 'progress', '--progress', 'json']);
    const lines = r.err
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).Progress);
    expect(lines.map((l) => l.PercentComplete)).toEqual([0, 50, 100, -1]);
    expect(lines[3].Completed).toBe(true);
    expect((await run(['Invoke-TestJob', 'progress'])).err).toBe('');
  });

  test('a terminal that reports 0 columns gets the default width, not a word per line', async () => {
    const r = await run(['--help'], { columns: 0, stdoutIsTTY: true });
    const synopsisLine = r.out.split('\n').find((l) => l.includes('Get-TestItem'))!;
    expect(synopsisLine.trim().split(/\s+/).length).toBeGreaterThan(2);
    const bar = await run(['Invoke-TestJob', 'progress'], { columns: 0, stderrIsTTY: true });
    expect(bar.err).toContain('\rTest job: 0% [                    ] 0%');
    expect(bar.err.endsWith(`\r${' '.repeat(79)}\r`)).toBe(true);
  });

  test('a terminal progress bar redraws one line and clears it', () => {
    let text = '';
    let t = 0;
    const write = (s: string): boolean => {
      text += s;
      return true;
    };
    const bar = terminalProgress({ write } as unknown as NodeJS.WritableStream, 40, 100, () => t);
    bar.report({ activity: 'Backup', status: 'Identity', percentComplete: 50 });
    bar.report({ activity: 'Backup', status: 'skipped: too soon', percentComplete: 51 });
    t = 200;
    bar.report({ activity: 'Backup', status: 'CA', percentComplete: 100 });
    bar.report({ activity: 'Backup', status: 'done', completed: true });
    expect(text).toContain('Backup: Identity [##########');
    expect(text).not.toContain('too soon');
    expect(text).not.toContain('\n');
    expect(text.endsWith(`\r${' '.repeat(39)}\r`)).toBe(true);
  });
});

describe('ShouldProcess', () => {
  test('-WhatIf describes and declines: on stderr for JSON, on stdout for list', async () => {
    const r = await run(['Set-TestShare', '/srv', '-WhatIf']);
    expect(r.code).toBe(0);
    expect(r.out).toBe('');
    expect(r.err).toBe('What if: Performing the operation "Set backup share" on target "/srv".\n');
    const l = await run(['Set-TestShare', '/srv', '-WhatIf', '--output', 'list']);
    expect(l.out).toBe('What if: Performing the operation "Set backup share" on target "/srv".\n');
  });

  test('-Confirm without a terminal is refused before the cmdlet runs', async () => {
    const home = join(temp, 'confirm-none');
    const r = await run(['Remove-TestItem', 'a', '-Confirm'], { env: { AZSBACKUP_HOME: home } });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.err).ErrorRecord.ErrorId).toBe('ConfirmationNotPossible');
    expect(existsSync(join(home, 'removed.txt'))).toBe(false);
  });

  test('on a terminal, a High-impact cmdlet asks: Y, N, A', async () => {
    const home = join(temp, 'confirm-tty');
    const r = await run(['Remove-TestItem', 'a,b,c,d'], {
      env: { AZSBACKUP_HOME: home },
      stdinIsTTY: true,
      stderrIsTTY: true,
      input: 'y\nn\na\n',
    });
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(join(home, 'removed.txt'), 'utf8')).toBe('a\nc\nd\n');
    expect(r.err).toContain('Performing the operation "Remove test item" on target "a".');
    expect(r.err).toContain('[Y] Yes  [A] Yes to All  [N] No  [L] No to All  [?] Help (default is "Y"):');
  });

  test('without a terminal, a High-impact cmdlet proceeds; -Confirm:$false never asks', async () => {
    const home = join(temp, 'confirm-script');
    expect((await run(['Remove-TestItem', 'a'], { env: { AZSBACKUP_HOME: home } })).code).toBe(0);
    const r = await run(['Remove-TestItem', 'b', '-Confirm:$false'], {
      env: { AZSBACKUP_HOME: home },
      stdinIsTTY: true,
      stderrIsTTY: true,
    });
    expect(r.err).toBe('');
    expect(readFileSync(join(home, 'removed.txt'), 'utf8')).toBe('a\nb\n');
  });
});

describe('home', () => {
  test('AZSBACKUP_HOME, else XDG_CONFIG_HOME, else ~/.config', () => {
    expect(resolveHome({ AZSBACKUP_HOME: '/h' }, 'linux')).toBe('/h');
    expect(resolveHome({ XDG_CONFIG_HOME: '/x' }, 'linux')).toBe('/x/azsbackup');
    expect(resolveHome({}, 'linux', () => '/home/op')).toBe('/home/op/.config/azsbackup');
  });
});
