import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshHome, makeDrill, runCli, type Drill, warningsIn, list } from '../support/cli.js';

/**
 * The restore an operator runs on a redeployed machine when the newest backup is not whole: it
 * must say which roles it did not put back and what to do about them, never end as if everything
 * came back.
 */

let d: Drill;
let whole: string;
let partial: string;
let importsLog: string;
let data: string;

beforeAll(async () => {
  d = await makeDrill({ roles: false });
  importsLog = path.join(d.root, 'imports.log');
  data = path.join(d.root, 'identity.dat');
  await fs.writeFile(data, 'identity data');
  await fs.mkdir(path.join(d.root, 'ca'));
  await fs.writeFile(path.join(d.root, 'ca', 'ca.key'), 'the CA key');
  await d.register('CA', ['-Provider', 'directory', '-Path', path.join(d.root, 'ca'), '-RestoreOrder', '10']);
  await d.registerCommand(
    'Identity',
    ['cat', data],
    ['sh', '-c', `cat >/dev/null; echo Identity >> '${importsLog}'`],
    ['-RestoreOrder', '20'],
  );
  whole = (await d.backup()).Name;
  // The Identity export fails in the newest backup: it is PartialSucceeded.
  await fs.rm(data);
  const r = await d.cli(['Start-InfrastructureBackup']);
  expect(r.code, r.stderr).toBe(3);
  expect(r.json.Status).toBe('PartialSucceeded');
  partial = r.json.Name;
}, 120_000);
afterAll(async () => d?.cleanup());

describe('a restore of a PartialSucceeded backup', () => {
  it('names the role it could not restore, says where to get it, and does not end as a success', async () => {
    await fs.rm(importsLog, { force: true });
    const { args, stdin } = d.decryptArgs();
    const r = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', partial, '-Path', d.share, ...args], { stdin });
    expect(r.code, r.stderr).toBe(3);
    const results = list(r.json);
    expect(results.map((x) => [x.RoleName, x.Status])).toEqual([
      ['CA', 'Succeeded'],
      ['Identity', 'Skipped'],
    ]);
    const identity = results.find((x) => x.RoleName === 'Identity');
    expect(identity.Error).toContain(`not in backup ${partial}`);
    expect(r.errors.map((e) => [e.ErrorId, e.TargetObject, e.ExitCode])).toEqual([['RoleNotBackedUp', 'Identity', 3]]);
    expect(r.errors[0]!.Message).toContain('cat');
    expect(r.errors[0]!.RecommendedAction).toContain('-RoleName Identity');
    await expect(fs.readFile(importsLog, 'utf8')).rejects.toThrow();
  });

  it('-RoleName of the role that failed in it says so, and sends the operator to an earlier backup', async () => {
    const { args, stdin } = d.decryptArgs();
    const r = await runCli(
      await freshHome(d),
      ['Restore-AzsBackup', '-Name', partial, '-Path', d.share, '-RoleName', 'identity', ...args],
      {
        stdin,
      },
    );
    expect(r.code).toBe(10);
    expect(r.errors[0]!.ErrorId).toBe('RoleNotInBackup');
    expect(r.errors[0]!.Message).toMatch(/Identity.*failed/i);
    expect(r.errors[0]!.RecommendedAction).toContain('earlier backup');
    // The earlier whole backup has it.
    const earlier = await runCli(
      await freshHome(d),
      ['Restore-AzsBackup', '-Name', whole, '-Path', d.share, '-RoleName', 'Identity', ...args],
      {
        stdin,
      },
    );
    expect(earlier.code, earlier.stderr).toBe(0);
    expect(await fs.readFile(importsLog, 'utf8')).toContain('Identity');
  });
});

describe('a restore stopped by a role that fails', () => {
  it('says of each role after it that it was not restored, why, and how to go on', async () => {
    const d2 = await makeDrill({ roles: false });
    try {
      await fs.mkdir(path.join(d2.root, 'ca'));
      await fs.writeFile(path.join(d2.root, 'ca', 'ca.key'), 'the CA key');
      await d2.registerCommand(
        'Broken',
        ['echo', 'data'],
        ['sh', '-c', 'cat >/dev/null; echo import broke >&2; exit 3'],
        ['-RestoreOrder', '5'],
      );
      await d2.register('CA', ['-Provider', 'directory', '-Path', path.join(d2.root, 'ca'), '-RestoreOrder', '10']);
      const name = (await d2.backup()).Name;
      await fs.writeFile(path.join(d2.root, 'ca', 'ca.key'), 'changed since');
      const { args, stdin } = d2.decryptArgs();
      const r = await runCli(await freshHome(d2), ['Restore-AzsBackup', '-Name', name, '-Path', d2.share, ...args], { stdin });
      expect(r.code).toBe(1);
      const results = list(r.json);
      expect(results.map((x) => [x.RoleName, x.Status])).toEqual([
        ['Broken', 'Failed'],
        ['CA', 'Skipped'],
      ]);
      const ca = results[1];
      expect(ca.Size).toBe(0);
      expect(ca.Error).toContain('Broken');
      expect(await fs.readFile(path.join(d2.root, 'ca', 'ca.key'), 'utf8')).toBe('changed since');
      expect(r.stderr).toMatch(/CA.*not restored/);
      expect(r.stderr).toContain('-RoleName CA');
    } finally {
      await d2.cleanup();
    }
  }, 60_000);
});

describe('the redeployed machine after its restore', () => {
  it('is told that nothing will back it up until the share and the roles are set up again', async () => {
    const home = await freshHome(d);
    const { args, stdin } = d.decryptArgs();
    const r = await runCli(home, ['Restore-AzsBackup', '-Name', whole, '-Path', d.share, ...args], { stdin });
    expect(r.code, r.stderr).toBe(0);
    const said = warningsIn(r.stderr).join('\n');
    expect(said).toContain('Set-BackupShare');
    expect(said).toContain(d.share);
    expect(said).toMatch(/CA, Identity.*not registered/);
    expect(said).toContain('Register-InfrastructureRole');
    // What it says is so: no backup is taken here yet.
    expect((await runCli(home, ['Start-InfrastructureBackup'])).code).not.toBe(0);
  });

  it('where the share and the roles are set up, says nothing of it', async () => {
    const { args, stdin } = d.decryptArgs();
    const r = await d.cli(['Restore-AzsBackup', '-Name', whole, ...args], { stdin });
    expect(r.code, r.stderr).toBe(0);
    expect(warningsIn(r.stderr)).toEqual([]);
  });
});
