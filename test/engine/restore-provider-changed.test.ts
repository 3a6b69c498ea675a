import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, makeDrill, type Drill } from '../support/cli.js';

/**
 * A restore follows this machine's registration of a role over the backup's record of it. Before,
 * that held for the provider too: a role registered again with another provider since the backup
 * had the old provider's data handed to the new one. A command role's import program was fed a
 * directory role's tar archive and the restore reported Succeeded; an sqlite role called the good
 * backup damaged (exit 12, "restore another one"). Data is only ever put back by the provider that
 * made it: the restore is refused before anything runs or changes, saying what to do.
 */

describe('a role registered with another provider since the backup', () => {
  let d: Drill;
  let name: string;
  beforeAll(async () => {
    d = await makeDrill();
    name = (await d.backup()).Name;
  }, 180_000);
  afterAll(async () => d?.cleanup());

  async function restore(args: string[] = []) {
    const { args: decrypt, stdin } = d.decryptArgs();
    return d.cli(['Restore-AzsBackup', '-Name', name, ...decrypt, '-Force', ...args], { stdin });
  }

  it('as a command: its import program is never run, and nothing is reported restored', async () => {
    const fed = path.join(d.root, 'fed-to-the-program');
    expectOk(
      await d.cli([
        'Register-InfrastructureRole',
        '-Name',
        'Files',
        '-Provider',
        'command',
        '-ExportCommand:/bin/true',
        '-ImportCommand:/bin/sh',
        '-ImportCommand:-c',
        `-ImportCommand:cat > '${fed}'`,
        '-Force',
      ]),
    );
    const before = { files: fingerprint(d.files), tarred: fingerprint(d.tarred) };
    for (const args of [['-RoleName', 'Files'], []]) {
      const r = await restore(args);
      expect(r.code).toBe(1);
      expect(r.errors[0]).toMatchObject({ ErrorId: 'RoleProviderChanged', TargetObject: 'Files', ExitCode: 1 });
      expect(r.errors[0]!.Message).toMatch(/command/);
      expect(r.errors[0]!.Message).toMatch(/directory/);
      expect(r.errors[0]!.RecommendedAction).toMatch(/Unregister-InfrastructureRole/);
      expect(JSON.stringify(r.json ?? [])).not.toMatch(/Succeeded/);
      await expect(fs.stat(fed)).rejects.toMatchObject({ code: 'ENOENT' });
      expect({ files: fingerprint(d.files), tarred: fingerprint(d.tarred) }).toEqual(before);
    }
  });

  it('as sqlite: the backup is not called damaged', async () => {
    const db = path.join(d.root, 'new.db');
    expectOk(await d.cli(['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'sqlite', '-DatabasePath', db, '-Force']));
    const r = await restore(['-RoleName', 'Files']);
    expect(r.code).toBe(1);
    expect(r.errors[0]).toMatchObject({ ErrorId: 'RoleProviderChanged', TargetObject: 'Files' });
    await expect(fs.stat(db)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('unregistered, it is restored as the backup recorded it', async () => {
    expectOk(await d.cli(['Unregister-InfrastructureRole', '-Name', 'Files', '-Force']));
    const before = fingerprint(d.files);
    await fs.rm(d.files, { recursive: true });
    const r = expectOk(await restore(['-RoleName', 'Files']));
    expect(r.json).toMatchObject([{ RoleName: 'Files', Provider: 'directory', Status: 'Succeeded', DefinitionSource: 'Backup' }]);
    expect(fingerprint(d.files)).toEqual(before);
  });
});
