import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, resultOf, whileRunning, type Drill, list } from '../support/cli.js';
import { heldExportRole, type Gate } from '../support/gate.js';
import { canUnshare, inNewPidNamespace, namespaceInit, onThisHost } from '../support/pid-namespace.js';

/**
 * One job at a time also between PID namespaces: a container that shares this host's name (docker
 * --network host or --uts host, a pod with hostNetwork) and AZSBACKUP_HOME, beside a command run on
 * the host. Defect this pinned: the job lock named its holder by its pid as its own namespace
 * numbers it, and a command in another namespace looked that pid up in its own: absent there
 * (taken for dead) or another process (kthreadd, with another start time: taken for a reused pid).
 * Either way the live lock was broken as stale and two backups ran at once, and the running job
 * listed as Failed ("interrupted").
 */

describe.skipIf(!canUnshare())('the job lock between PID namespaces on one host', () => {
  let d: Drill;
  let gate: Gate;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    gate = await heldExportRole(d);
  });
  afterAll(async () => {
    await gate?.release().catch(() => undefined);
    await d?.cleanup();
  });

  it.each([
    ['in another PID namespace', inNewPidNamespace, onThisHost],
    ['in this one, seen from another', onThisHost, inNewPidNamespace],
  ] as const)('a backup running %s holds the lock: a second backup is refused, the first lists as Running', async (_, first, second) => {
    await gate.arm();
    const running = first(d.home, ['Start-InfrastructureBackup']);
    await whileRunning(running, 'the backup exporting its role', gate.held);

    const r = await second(d.home, ['Start-InfrastructureBackup']);
    const refused = resultOf(r.exitCode ?? -1, String(r.stdout), String(r.stderr));
    const seen = await second(d.home, ['Get-InfrastructureBackup']);
    await gate.release();
    const ended = await running;
    expect(ended.exitCode, String(ended.stderr)).toBe(0);

    expect(refused.code, refused.stderr).toBe(11);
    expect(refused.errors[0]?.ErrorId).toBe('JobLockHeld');
    const name = JSON.parse(String(ended.stdout)).Name as string;
    expect(list(JSON.parse(String(seen.stdout))).find((b) => b.Name === name)?.Status).toBe('Running');
    expect(list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).find((b) => b.Name === name)?.Status).toBe('Succeeded');
  });

  // From the host's namespace every other one is visible: one with no process left has ended, and
  // its lock is taken over at once, as a dead process's is (not trusted for a day).
  it('a backup killed with its container (kill -9 of its namespace) leaves a lock this host takes over at once', async () => {
    const jobs = await fs.readdir(path.join(d.home, 'jobs'));
    await gate.arm();
    const running = inNewPidNamespace(d.home, ['Start-InfrastructureBackup']);
    await whileRunning(running, 'the backup exporting its role', gate.held);
    // The namespace's first process (the CLI) ends, and the kernel ends every other one in it.
    process.kill(namespaceInit(running.pid!), 'SIGKILL');
    await running;
    await gate.release();

    const killed = (await fs.readdir(path.join(d.home, 'jobs'))).filter((f) => !jobs.includes(f)).map((f) => f.slice(0, -5));
    const next = await onThisHost(d.home, ['Start-InfrastructureBackup']);
    expect(next.exitCode, String(next.stderr)).toBe(0);
    const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(killed).toHaveLength(1);
    expect(listed.find((b) => b.Name === killed[0])).toMatchObject({ Status: 'Failed', Progress: expect.stringMatching(/interrupted/) });
  });
});
