import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, freshHome, makeDrill, runCli, type Drill, list } from '../support/cli.js';

/**
 * A backup's BackupInfo.xml records each role's definition, and a fresh machine restores with it
 * (FORMAT.md section 2): what it records must come back exactly as registered. It once came back
 * with its leading and trailing white space trimmed and its carriage returns made line feeds, so a
 * folder named with a trailing space was restored into the folder without it (replacing whatever
 * that held), and a command ran with other arguments than the ones registered.
 */

describe('a role definition recorded in BackupInfo.xml', () => {
  let d: Drill;
  /** A folder whose name ends in a space, and its neighbour without the space. */
  let spaced: string;
  let neighbour: string;
  /** Where the command role's import writes the argument it was given. */
  let received: string;
  const argument = ' \tpadded\r\nline\r\n ';

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    spaced = path.join(d.root, 'infra', 'data ');
    neighbour = path.join(d.root, 'infra', 'data');
    received = path.join(d.root, 'received');
    await fs.mkdir(spaced, { recursive: true });
    await fs.writeFile(path.join(spaced, 'precious.txt'), 'the role data\n');
    await fs.mkdir(neighbour);
    await fs.writeFile(path.join(neighbour, 'other.txt'), 'another application, not backed up\n');
    await d.register('Spaced', ['-Provider', 'directory', '-Path', spaced, '-RestoreOrder', '10']);
    await d.registerCommand(
      'Echoed',
      ['echo', 'exported'],
      ['sh', '-c', 'cat >/dev/null; printf %s "$1" > "$2"', 'sh', argument, received],
      ['-RestoreOrder', '20'],
    );
  });
  afterAll(() => d?.cleanup());

  it('on the machine that registered it, the restore finds no difference from the record', async () => {
    const b = await d.backup();
    const r = expectOk(
      await d.cli(['Restore-AzsBackup', '-Name', b.Name, '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${d.key}\n` }),
    );
    expect(list(r.json).map((x) => [x.RoleName, x.DefinitionSource, x.DefinitionDifference])).toEqual([
      ['Spaced', 'Registered', null],
      ['Echoed', 'Registered', null],
    ]);
  });

  it('restores on a fresh machine into the folder and with the arguments registered, exactly', async () => {
    const b = await d.backup();
    const spacedBefore = fingerprint(spaced);
    const neighbourBefore = fingerprint(neighbour);
    await fs.rm(spaced, { recursive: true });
    const restored = expectOk(
      await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', b.Name, '-Path', d.share, '-EncryptionKey', '-', '-Confirm:$false'], {
        stdin: `${d.key}\n`,
      }),
      'Restore-AzsBackup on a fresh machine',
    );
    const results = list(restored.json);
    expect(results.map((r) => [r.RoleName, r.DefinitionSource])).toEqual([
      ['Spaced', 'Backup'],
      ['Echoed', 'Backup'],
    ]);
    expect(results[0].Destination).toBe(spaced);
    expect(fingerprint(neighbour)).toBe(neighbourBefore);
    expect(fingerprint(spaced)).toBe(spacedBefore);
    expect(await fs.readFile(received, 'utf8')).toBe(argument);
  });
});
