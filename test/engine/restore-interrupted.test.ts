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

describe('Ctrl-C while the first of two staged roles goes into place', () => {
  let d3: Drill;
  afterAll(async () => d3?.cleanup());

  it('puts no later role into place, says so of it, and the same restore run again finishes', async () => {
    d3 = await makeDrill({ roles: false });
    const infra = path.join(d3.root, 'infra');
    const first = path.join(infra, 'first');
    const second = path.join(infra, 'second');
    for (const dir of [first, second]) {
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, 'data.txt'), `${path.basename(dir)} as backed up`);
    }
    await d3.register('First', ['-Provider', 'directory', '-Path', first, '-RestoreOrder', '10']);
    await d3.register('Second', ['-Provider', 'directory', '-Path', second, '-RestoreOrder', '20']);
    const name = (await d3.backup()).Name;
    const [firstBackedUp, secondBackedUp] = [fingerprint(first), fingerprint(second)];
    await fs.writeFile(path.join(first, 'data.txt'), 'first as it is today');
    await fs.writeFile(path.join(first, 'only-in-old.txt'), 'today');
    await fs.writeFile(path.join(second, 'data.txt'), 'second as it is today');
    const secondToday = fingerprint(second);

    const { args, stdin } = d3.decryptArgs();
    const restore = ['Restore-AzsBackup', '-Name', name, ...args, '-Confirm:$false'];
    // Each step of a swap waits 300 ms (a test-only switch, src/providers/swap.ts): Ctrl-C comes
    // once First's old folder lies under its staging name, the exchange done.
    const child = spawnCli(d3.home, restore, {
      stdin,
      env: { AZSBACKUP_TEST_SWAP_PAUSE_MS: '300' },
      timeoutMs: 60_000,
      killSignal: 'SIGKILL',
    });
    await whileRunning(child, "First's old folder set aside by the exchange", async () => {
      const staging = (await fs.readdir(infra)).find((n) => n.startsWith('.first.azs-staging-'));
      return staging !== undefined && exists(path.join(infra, staging, 'only-in-old.txt'));
    });
    child.kill('SIGINT');
    const done = await child;
    const r = resultOf(done.exitCode ?? -1, String(done.stdout), String(done.stderr));
    expect(r.code, r.stderr).toBe(130);
    const results = list(r.json);
    expect(
      results.map((x) => [x.RoleName, x.Status]),
      r.stdout,
    ).toEqual([
      ['First', 'Succeeded'],
      ['Second', 'Skipped'],
    ]);
    expect(results[1].Error).toMatch(/stopped/);
    expect(fingerprint(first)).toBe(firstBackedUp);
    expect(fingerprint(second)).toBe(secondToday);
    expect((await fs.readdir(infra)).filter((n) => n.startsWith('.'))).toEqual([]);

    const again = expectOk(await d3.cli(restore, { stdin }));
    expect(list(again.json).map((x) => [x.RoleName, x.Status])).toEqual([
      ['First', 'Succeeded'],
      ['Second', 'Succeeded'],
    ]);
    expect(fingerprint(second)).toBe(secondBackedUp);
  });
});
