import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, list, makeDrill, parseErrors, resultOf, spawnCli, whileRunning, type Drill } from '../support/cli.js';

/**
 * Ctrl-C in a restore of several roles, as the operator meets it: some roles may already be back,
 * others not. The command must say which, role by role, as a finished restore does, and running
 * the same restore again must finish the job.
 */

let d: Drill;
let backupName: string;
let marker: string;
let importsLog: string;
let ca: string;
/** The CA folder as the backup holds it. */
let caBackedUp: string;

const exists = (p: string) =>
  fs.lstat(p).then(
    () => true,
    () => false,
  );

beforeAll(async () => {
  d = await makeDrill({ roles: false });
  marker = path.join(d.root, 'import-started');
  importsLog = path.join(d.root, 'imports.log');
  ca = path.join(d.root, 'ca');
  await fs.mkdir(ca);
  await fs.writeFile(path.join(ca, 'ca.key'), 'the CA key as backed up');
  await d.register('CA', ['-Provider', 'directory', '-Path', ca, '-RestoreOrder', '10']);
  // Its import hangs while the marker's folder holds 'hang', and otherwise logs that it ran.
  await d.registerCommand(
    'Identity',
    ['sh', '-c', 'echo identity data'],
    ['sh', '-c', `cat >/dev/null; if [ -e '${marker}.hang' ]; then touch '${marker}'; exec sleep 60; fi; echo Identity >> '${importsLog}'`],
    ['-RestoreOrder', '20'],
  );
  backupName = (await d.backup()).Name;
  caBackedUp = fingerprint(ca);
}, 120_000);
afterAll(async () => d?.cleanup());

function startRestore() {
  const { args, stdin } = d.decryptArgs();
  return spawnCli(d.home, ['Restore-AzsBackup', '-Name', backupName, ...args, '-Confirm:$false'], {
    stdin,
    timeoutMs: 60_000,
    killSignal: 'SIGKILL',
  });
}

describe('Ctrl-C in a restore of several roles', () => {
  it('after the first role went back: lists each role with what became of it, exits 130, and the same restore run again finishes', async () => {
    await fs.writeFile(path.join(ca, 'ca.key'), 'the CA key as it is today');
    await fs.writeFile(`${marker}.hang`, '');
    const child = startRestore();
    await whileRunning(child, 'the Identity import to start', () => exists(marker));
    // CA went into place before Identity's import began.
    expect(fingerprint(ca)).toBe(caBackedUp);
    child.kill('SIGINT');
    const done = await child;
    const r = resultOf(done.exitCode ?? -1, String(done.stdout), String(done.stderr));
    expect(r.code, r.stderr).toBe(130);
    expect(parseErrors(r.stderr).map((e) => e.ErrorId)).toContain('PipelineStopped');
    const results = list(r.json);
    expect(
      results.map((x) => [x.RoleName, x.Status]),
      r.stdout,
    ).toEqual([
      ['CA', 'Succeeded'],
      ['Identity', 'Failed'],
    ]);
    expect(results[1].Error).toMatch(/stopped|cancel/i);

    await fs.rm(`${marker}.hang`);
    await fs.rm(marker);
    const { args, stdin } = d.decryptArgs();
    const again = expectOk(await d.cli(['Restore-AzsBackup', '-Name', backupName, ...args, '-Confirm:$false'], { stdin }));
    expect(list(again.json).map((x) => [x.RoleName, x.Status])).toEqual([
      ['CA', 'Succeeded'],
      ['Identity', 'Succeeded'],
    ]);
    expect(await fs.readFile(importsLog, 'utf8')).toBe('Identity\n');
  });
});
