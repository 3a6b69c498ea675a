import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, runCli } from '../support/cli.js';

/**
 * What the operator types is what the command binds, through the real CLI, in the forms a
 * PowerShell user and a script use. Defects these pinned:
 * - A value that began and ended with the same quote character ('"echo hi"', "'x'", a lone '"')
 *   lost those quotes on the way through the option parser: Register-InfrastructureRole stored
 *   and later ran an -ExportCommand other than the one given, and the PowerShell module, which
 *   passes each array element as its own -Name value, hit the same.
 */

let root = '';
let home = '';
let data = '';

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-binding-'));
  home = path.join(root, 'home');
  data = path.join(root, 'data');
  await fs.mkdir(data);
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('values are bound exactly as given', () => {
  it.each([
    [
      '-ExportCommand sh -ExportCommand:-c -ExportCommand \'"echo hi"\'',
      ['-ExportCommand', 'sh', '-ExportCommand:-c', '-ExportCommand', '"echo hi"'],
    ],
    [
      '--exportcommand=sh --exportcommand=-c --exportcommand="\'quoted\'"',
      ['--exportcommand=sh', '--exportcommand=-c', "--exportcommand='quoted'"],
    ],
    ["-ExportCommand:printf -ExportCommand:'\"'", ['-ExportCommand:printf', '-ExportCommand:"']],
  ])('Register-InfrastructureRole %s stores that command, quotes and all', async (_name, exportArgs) => {
    const expected = exportArgs.map((a) => a.replace(/^-(-exportcommand=|ExportCommand:)/, '')).filter((a) => a !== '-ExportCommand');
    const name = `Cmd${expected.length}${expected.at(-1)!.length}`;
    const r = expectOk(
      await runCli(home, [
        'Register-InfrastructureRole',
        '-Name',
        name,
        '-Provider',
        'command',
        ...exportArgs,
        '-ImportCommand',
        'cat',
        '-PassThru',
      ]),
    );
    expect(r.json.ExportCommand).toEqual(expected);
    const listed = expectOk(await runCli(home, ['Get-InfrastructureRole', name]));
    expect([listed.json].flat()[0].ExportCommand).toEqual(expected);
  });

  it('a role name in quotes is looked up with its quotes', async () => {
    expectOk(await runCli(home, ['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', data]));
    const r = await runCli(home, ['Get-InfrastructureRole', '-Name', '"Files"']);
    expect(r.errors.map((e) => e.ErrorId)).toEqual(['RoleNotFound']);
    expect(r.errors[0]!.TargetObject).toBe('"Files"');
  });
});

// '/?' asks for help where a parameter name can stand (cmd.exe's and PowerShell's habit), but the
// host took it as a request for help anywhere, also as a parameter's value: Register-InfrastructureRole
// printed help, exited 0 and registered nothing, and a script took the 0 for success.
describe("'/?' as a value", () => {
  it('is bound as the value, and still asks for help where a parameter name could stand', async () => {
    const r = expectOk(
      await runCli(home, [
        'Register-InfrastructureRole',
        '-Name',
        'Helpy',
        '-Provider',
        'command',
        '-ExportCommand',
        'mytool',
        '-ExportCommand',
        '/?',
        '-ImportCommand',
        'cat',
        '-PassThru',
      ]),
    );
    expect(r.json.ExportCommand).toEqual(['mytool', '/?']);
    expect([expectOk(await runCli(home, ['Get-InfrastructureRole', 'Helpy'])).json].flat()[0].ExportCommand).toEqual(['mytool', '/?']);
    for (const args of [['/?'], ['-Name', 'Helpy', '-?'], ['-Name', 'Helpy', '--help']]) {
      const help = expectOk(await runCli(home, ['Get-InfrastructureRole', ...args]));
      expect(help.stdout, args.join(' ')).toMatch(/SYNTAX|Get-InfrastructureRole/);
      expect(help.json, args.join(' ')).toBeUndefined();
    }
  });
});
