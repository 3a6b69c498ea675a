import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, expectOk, fingerprint, makeDrill, resultOf, type CliResult, type Drill } from '../support/cli.js';

/**
 * Backup and restore under a limit on processes (a service's TasksMax=, a container's pids limit,
 * ulimit -u): each of the process's threads counts, and so does each program it starts. Under
 * every limit from the lowest Node starts under to the first that lets everything run, a command
 * fails with an error that names the limit and its remedy, or works; never an internal error.
 * Defect this pinned: a restore whose chunk worker thread could not be started failed as "internal
 * error: EAGAIN ... This is a bug in AzsBackup", with Node's stack trace.
 */

const PIDS = '/sys/fs/cgroup/pids';
const cg = path.join(PIDS, `azs-test-cli-${process.pid}`);
const usable = (() => {
  if (!existsSync(path.join(PIDS, 'cgroup.procs'))) return false;
  try {
    mkdirSync(cg);
    rmdirSync(cg);
    return true;
  } catch {
    return false;
  }
})();

/** The CLI started inside the cgroup, limited to `pids` processes and threads in all. */
async function limitedCli(home: string, pids: number, args: string[], stdin = ''): Promise<CliResult> {
  writeFileSync(path.join(cg, 'pids.max'), String(pids));
  const r = await execa(
    'sh',
    ['-c', `echo $$ > ${cg}/cgroup.procs && exec "$0" "$@"`, process.execPath, CLI, ...args, '--output', 'json'],
    {
      env: cliEnv(home),
      extendEnv: false,
      input: stdin,
      reject: false,
      timeout: 60_000,
    },
  );
  return { ...resultOf(r.exitCode ?? -1, String(r.stdout), String(r.stderr)), signal: r.signal } as CliResult & { signal?: string };
}

/** Node itself could not start its own threads: it aborts before any of our code runs. */
const nodeCouldNotStart = (r: CliResult & { signal?: string }) => r.signal === 'SIGABRT' || r.code === 134;

function expectTruthful(r: CliResult, what: string): void {
  for (const e of r.errors) {
    expect(e.ErrorId, `${what}: ${r.stderr}`).not.toMatch(/^(InternalError|BackupFailed|RestoreFailed)$/);
    expect(e.RecommendedAction, `${what}: ${r.stderr}`).toBeTruthy();
    expect(e.Message, `${what}: ${r.stderr}`).not.toMatch(/Allocation error|^[^:]*: EAGAIN$/);
  }
  if (r.code !== 0) expect(r.errors.length, `${what} exited ${r.code} without saying why: ${r.stderr}`).toBeGreaterThan(0);
}

describe.skipIf(!usable)('backup and restore under a limit on processes', () => {
  let d: Drill;
  beforeAll(async () => {
    mkdirSync(cg);
    d = await makeDrill();
  });
  afterAll(async () => {
    await d?.cleanup();
    rmdirSync(cg);
  });

  it('every command fails naming the limit, or works; what was backed up restores', async () => {
    const before = { files: fingerprint(d.files), tarred: fingerprint(d.tarred) };
    const name = (await d.backup()).Name;
    const { args, stdin } = d.decryptArgs();
    let worked = 0;
    for (let pids = 8; pids <= 16; pids++) {
      const backup = await limitedCli(d.home, pids, ['Start-InfrastructureBackup']);
      if (!nodeCouldNotStart(backup)) expectTruthful(backup, `backup under pids.max ${pids}`);
      const restore = await limitedCli(d.home, pids, ['Restore-AzsBackup', '-Name', name, ...args, '-Confirm:$false'], stdin);
      if (nodeCouldNotStart(restore)) continue;
      expectTruthful(restore, `restore under pids.max ${pids}`);
      if (restore.code === 0) worked++;
      // Whatever failed, each role is as it was backed up: restored whole, or left alone.
      expect(fingerprint(d.files), `restore under pids.max ${pids}`).toBe(before.files);
      expect(fingerprint(d.tarred), `restore under pids.max ${pids}`).toBe(before.tarred);
    }
    expect(worked, 'no limit tried let a restore run: try higher ones').toBeGreaterThan(0);
    expect(readFileSync(path.join(cg, 'pids.current'), 'utf8').trim()).toBe('0');
    // Unlimited again, the next backup works.
    expectOk(await d.cli(['Start-InfrastructureBackup']), 'backup without a limit');
  });
});
