import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadPid, expectOk, fingerprint, freshHome, makeDrill, runCli, whileRunning, type Drill, list } from '../support/cli.js';
import { heldExportRole, type Gate } from '../support/gate.js';
import { canUnshare, inNewPidNamespace, namespaceInit, onThisHost } from '../support/pid-namespace.js';

/**
 * The private folders of AZSBACKUP_HOME (plaintext: a SQLite snapshot, the SMB auth file with the
 * share password) between PID namespaces of one host: a container sharing the host's name and its
 * AZSBACKUP_HOME. Defect this pinned: a folder was named by host, boot, pid and start time only,
 * and every command removes those of processes it proves dead by looking the pid up in its own
 * namespace; a container's pid there is another process or none, so a command on the host deleted
 * a running container job's private folder (its SMB auth file with it) as "provably dead".
 */

const privateFolders = (d: Drill) => fs.readdir(path.join(d.home, 'private')).catch(() => [] as string[]);

describe.skipIf(!canUnshare())('private folders between PID namespaces on one host', () => {
  let d: Drill;
  let gate: Gate;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    // The SQLite role's snapshot makes the backup's private folder; the gated role then holds the backup.
    await d.register('Db', ['-Provider', 'sqlite', '-DatabasePath', d.db, '-RestoreOrder', '10']);
    gate = await heldExportRole(d);
  });
  afterAll(async () => {
    await gate?.release().catch(() => undefined);
    await d?.cleanup();
  });

  /** A backup started by `cli`, once it holds in the gated role with its private folder made (wrapped: a subprocess is a thenable). */
  async function backupHeldIn(cli: typeof onThisHost) {
    await gate.arm();
    const running = cli(d.home, ['Start-InfrastructureBackup']);
    await whileRunning(
      running,
      'the backup holding its private folder',
      async () => (await gate.held()) && (await privateFolders(d)).length > 0,
    );
    return { running };
  }

  it.each([
    ['in another PID namespace, seen from this one', inNewPidNamespace, onThisHost],
    ['in this one, seen from another', onThisHost, inNewPidNamespace],
  ] as const)('a running backup keeps its private folder %s; it goes when the backup ends', async (_, first, second) => {
    const { running } = await backupHeldIn(first);
    const held = await privateFolders(d);

    // Any command of this home sweeps the private folders of dead processes first.
    const other = await second(d.home, ['Get-BackupConfiguration']);
    const after = await privateFolders(d);
    await gate.release();
    const ended = await running;

    expect(other.exitCode, String(other.stderr)).toBe(0);
    expect(ended.exitCode, String(ended.stderr)).toBe(0);
    expect(after).toEqual(held);
    expect(await privateFolders(d)).toEqual([]);
  });

  it('the private folder of a backup killed with its container (every process of its namespace) goes at the next command here', async () => {
    const { running } = await backupHeldIn(inNewPidNamespace);
    process.kill(namespaceInit(running.pid!), 'SIGKILL');
    await running;
    await gate.release();
    expect(await privateFolders(d)).toHaveLength(1);

    expectOk(await d.cli(['Get-BackupConfiguration']));
    expect(await privateFolders(d)).toEqual([]);
    // What the kill left is settled: the next backup runs, and the killed one lists as Failed.
    expectOk(await d.cli(['Start-InfrastructureBackup']));
    expect(list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).map((b) => b.Status)).toContain('Failed');
  });

  it('folders named as earlier versions named them (host, boot, pid, start) are still read: a dead process is swept, a live one kept', async () => {
    const host = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '').slice(0, 8);
    const startOf = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]!;
    const dead = `${host}-${boot}-${await deadPid()}-12345`;
    const live = `${host}-${boot}-${process.pid}-${startOf(process.pid)}`;
    for (const name of [dead, live]) await fs.mkdir(path.join(d.home, 'private', name), { recursive: true, mode: 0o700 });

    expectOk(await d.cli(['Get-BackupConfiguration']));
    expect(await privateFolders(d)).toEqual([live]);
    await fs.rm(path.join(d.home, 'private', live), { recursive: true });
  });
});

/**
 * The same for the journal a restore keeps beside its destination while it puts the restored
 * folder in place (FORMAT.md section 6): a container restoring into a folder it shares with the
 * host, while the host backs that folder up (each with its own AZSBACKUP_HOME). Every backup of the
 * folder first settles the swaps of dead processes; judged by a pid of another namespace, the
 * running restore's staging was removed under it.
 */
describe.skipIf(!canUnshare())('a restore journal between PID namespaces on one host', () => {
  let d: Drill;
  let hostHome: string;
  let backupName: string;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    backupName = (await d.backup()).Name;
    // The host backs the same folder up with a home of its own.
    hostHome = await freshHome(d);
    expectOk(await runCli(hostHome, ['Set-BackupShare', '-Path', d.share, '-EncryptionKey', '-'], { stdin: `${d.key}\n` }));
    expectOk(await runCli(hostHome, ['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', d.files]));
  });
  afterAll(async () => d?.cleanup());

  it("a backup on the host leaves a container's running restore alone, and the restore puts the folder in place", async () => {
    const restored = fingerprint(d.files);
    await fs.writeFile(path.join(d.files, 'cloud.json'), 'changed since the backup');
    const journals = async () => (await fs.readdir(path.dirname(d.files))).filter((n) => n.startsWith('.files.azs-swap-'));

    const restore = inNewPidNamespace(
      d.home,
      ['Restore-AzsBackup', '-Name', backupName, '-RoleName', 'Files', '-EncryptionKey', '-', '-Confirm:$false'],
      {
        input: `${d.key}\n`,
        // Each step of the swap waits, so the host's backup comes while the journal is there.
        env: { AZSBACKUP_TEST_SWAP_PAUSE_MS: '1500' },
      },
    );
    await whileRunning(restore, 'the restore putting the folder in place', async () => (await journals()).length > 0);
    const backup = await onThisHost(hostHome, ['Start-InfrastructureBackup']);
    const ended = await restore;

    expect(backup.exitCode, String(backup.stderr)).toBe(0);
    expect(ended.exitCode, String(ended.stderr)).toBe(0);
    expect(fingerprint(d.files)).toBe(restored);
    expect(await journals()).toEqual([]);
  });
});
