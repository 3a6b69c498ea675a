import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Drill, expectOk, makeDrill, warningsIn } from '../support/cli.js';

/**
 * What an operator under stress can lose with one command that is not refused, and what they are
 * told when they ask for it with -Force. Defects this pinned:
 * - Register-InfrastructureRole with a registered role's name (in any case) replaced and renamed it
 *   without a word, losing its path or its sealed database password; -Force did not exist.
 * - Remove-InfrastructureBackup -Confirm:$false removed the newest restorable backup without a word,
 *   and the last restorable one without -Force, though prune always keeps it.
 */

let d: Drill;
beforeAll(async () => {
  d = await makeDrill();
});
afterAll(async () => {
  await d?.cleanup();
});

describe('Register-InfrastructureRole with a name already registered', () => {
  it('replaces only with -Force, and says what it replaced', async () => {
    const config = () => readFileSync(path.join(d.home, 'config.json'), 'utf8');
    const before = config();
    const refused = await d.cli(['Register-InfrastructureRole', '-Name', 'files', '-Provider', 'directory', '-Path', d.root]);
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.errors[0]).toMatchObject({ ErrorId: 'RoleExists', Category: 'ResourceExists', TargetObject: 'Files' });
    expect(config()).toBe(before);

    const forced = expectOk(
      await d.cli(['Register-InfrastructureRole', '-Name', 'files', '-Provider', 'directory', '-Path', d.root, '-Force']),
    );
    expect(forced.json).toMatchObject({ Name: 'files', Path: d.root });
    expect(warningsIn(forced.stderr).join(' ')).toMatch(new RegExp(`Files.*${d.files.replaceAll('/', '\\/')}`));
  });

  it('keeps a sealed database password when the same definition is given again, and says when -Force drops it', async () => {
    const conn = 'postgresql://backup@db.example/app';
    const pg = ['Register-InfrastructureRole', '-Name', 'Pg', '-Provider', 'postgres', '-ConnectionString', conn];
    expectOk(await d.cli([...pg, '-DatabasePassword', '-'], { stdin: 'pg-secret\n' }));
    const config = () => readFileSync(path.join(d.home, 'config.json'), 'utf8');
    const sealed = config();
    // The same line again, with or without the same password: nothing to do, nothing lost.
    expectOk(await d.cli(pg));
    expectOk(await d.cli([...pg, '-DatabasePassword', '-'], { stdin: 'pg-secret\n' }));
    expect(config()).toBe(sealed);
    // Another password replaces the sealed one: that needs -Force.
    const other = await d.cli([...pg, '-DatabasePassword', '-'], { stdin: 'another\n' });
    expect(other.errors[0]?.ErrorId, other.stderr).toBe('RoleExists');
    expect(config()).toBe(sealed);
    const forced = expectOk(await d.cli([...pg, '-RestoreOrder', '5', '-Force']));
    expect(warningsIn(forced.stderr).join(' ')).toMatch(/Pg.*database password/);
  });
});

describe('Remove-InfrastructureBackup of the newest or the last restorable backup', () => {
  it('warns for the newest, refuses the last without -Force, and warns when -Force removes it', async () => {
    // A machine of its own: the roles above were changed on purpose.
    await d.cleanup();
    d = await makeDrill();
    const older = (await d.backup()).Name as string;
    const newer = (await d.backup()).Name as string;

    const newest = expectOk(await d.cli(['Remove-InfrastructureBackup', '-Name', newer, '-Confirm:$false']));
    expect(warningsIn(newest.stderr).join(' ')).toMatch(new RegExp(`${newer}.*newest.*${older}`));

    const last = await d.cli(['Remove-InfrastructureBackup', '-Name', older, '-Confirm:$false']);
    expect(last.code, last.stderr).toBe(2);
    expect(last.errors[0]).toMatchObject({ ErrorId: 'LastRestorableBackup', TargetObject: older });
    expect((await d.cli(['Get-InfrastructureBackup'])).json).toHaveLength(1);

    const forced = expectOk(await d.cli(['Remove-InfrastructureBackup', '-Name', older, '-Force']));
    expect(warningsIn(forced.stderr).join(' ')).toMatch(new RegExp(`${older}.*no restorable backup`));
  });
});
