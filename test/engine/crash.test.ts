import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, parseErrors, processesWith, spawnCli, type Drill, fullCopyBackups, list } from '../support/cli.js';

/**
 * kill -9 of a running Start-InfrastructureBackup, a real child process, at several moments. After
 * each: earlier backups still verify with the key, nothing half-written lists as a backup, the lock
 * left behind is stale and the next backup takes it over, and prune clears the leftovers.
 */

async function partialFolders(share: string): Promise<string[]> {
  const root = path.join(share, 'MASBackup');
  const out: string[] = [];
  for (const stamp of await fs.readdir(root).catch(() => [] as string[])) {
    for (const child of await fs.readdir(path.join(root, stamp)).catch(() => [] as string[])) {
      if (child.endsWith('.partial')) out.push(`MASBackup/${stamp}/${child}`);
    }
  }
  return out;
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `midWrite`: the kill lands while the backup is writing, so there must be something to clean up. */
type KillPoint = { name: string; midWrite?: boolean; wait(d: Drill): Promise<void> };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const killPoints: KillPoint[] = [
  { name: '50 ms after start', wait: () => sleep(50) },
  { name: '300 ms after start', wait: () => sleep(300) },
  { name: '800 ms after start', wait: () => sleep(800) },
  {
    name: 'as soon as the .partial folder appears',
    midWrite: true,
    wait: (d) => until('a .partial folder', async () => (await partialFolders(d.share)).length > 0),
  },
  {
    name: 'while Big.azsrole is being written',
    midWrite: true,
    wait: (d) =>
      until('Big.azsrole to grow past 4 MB', async () => {
        for (const p of await partialFolders(d.share)) {
          const st = await fs.stat(path.join(d.share, p, 'Big.azsrole')).catch(() => undefined);
          if (st && st.size > 4 * 1024 * 1024) return true;
        }
        return false;
      }),
  },
];

describe('kill -9 during a backup', () => {
  // Kill points inside full-copy role files (format 2); the repository's kill points: repository-crash.test.ts.
  fullCopyBackups();
  let d: Drill;
  let baseline: any;
  /** Backups that completed: they, and only they, list as anything but Failed. */
  const completed = new Set<string>();

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    const big = path.join(d.root, 'big');
    await fs.mkdir(big);
    await fs.writeFile(path.join(big, 'small.txt'), 'the baseline backup is small');
    await d.register('Big', ['-Provider', 'directory', '-Path', big]);
    await d.registerCommand('Slowish', ['sh', '-c', `sleep 1; tar -C '${d.tarred}' -cf - .`], ['tar', '-C', d.tarred, '-xpf', '-']);
    baseline = await d.backup();
    completed.add(baseline.Name);
    // From now on every backup has 40 MB of incompressible data to push through the pipeline.
    for (let i = 0; i < 4; i++) await fs.writeFile(path.join(big, `random-${i}.bin`), randomBytes(10 * 1024 * 1024));
  });
  afterAll(async () => d?.cleanup());

  it.each(killPoints)('killed $name: nothing half-written lists, the lock is taken over, prune clears up', async (point) => {
    const child = spawnCli(d.home, ['Start-InfrastructureBackup']);
    await point.wait(d);
    child.kill('SIGKILL');
    const ended = await child;
    // The backup may have been quicker than the kill; then it must simply have succeeded.
    if (ended.signal !== 'SIGKILL') {
      expect(ended.exitCode).toBe(0);
      completed.add(JSON.parse(String(ended.stdout)).Name);
    }

    // Earlier backups are untouched and still verify with the key.
    const { args, stdin } = d.decryptArgs();
    for (const name of completed) {
      const test = await d.cli(['Test-InfrastructureBackup', '-Name', name, ...args], { stdin });
      expect(test.code, test.stderr).toBe(0);
      expect(test.json.IsValid).toBe(true);
    }

    // No new backup lists; at most the interrupted job, as Failed.
    const partials = await partialFolders(d.share);
    const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    for (const b of listed) {
      if (!completed.has(b.Name)) expect(b.Status, JSON.stringify(b)).toBe('Failed');
      expect(partials.some((p) => p.includes(b.Name)) && b.Status !== 'Failed').toBe(false);
    }
    expect(
      listed
        .filter((b) => b.Status !== 'Failed')
        .map((b) => b.Name)
        .sort(),
    ).toEqual([...completed].sort());

    if (point.midWrite) {
      expect(ended.signal).toBe('SIGKILL');
      expect(partials.length).toBe(1);
      // The dead process still names itself in the lock, and its job record shows it interrupted.
      const lock = JSON.parse(await fs.readFile(path.join(d.home, 'job.lock'), 'utf8'));
      expect(lock.pid).toBe(child.pid);
      const name = path.basename(partials[0]!, '.partial');
      const job = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', name])).json;
      expect(job.Status).toBe('Failed');
      expect(job.Progress).toMatch(/interrupted/);
    }

    // The lock the dead process left (if it got that far) is stale: the next backup takes it.
    const next = await d.cli(['Start-InfrastructureBackup', '-RoleName', 'Slowish']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.json.Status).toBe('Succeeded');
    completed.add(next.json.Name);

    // Prune removes exactly the leftovers and no backup.
    const prune = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(prune.json.BackupsRemoved).toBe(0);
    expect([...prune.json.PathsToDelete].sort()).toEqual([...partials].sort());
    expect(await partialFolders(d.share)).toEqual([]);
    expect(list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).filter((b) => b.Status !== 'Failed').length).toBe(completed.size);
  });

  it('after all that, a full backup succeeds and verifies', async () => {
    const full = await d.backup();
    expect(full.Status).toBe('Succeeded');
    const { args, stdin } = d.decryptArgs();
    const test = await d.cli(['Test-InfrastructureBackup', '-Name', full.Name, ...args], { stdin });
    expect(test.code, test.stderr).toBe(0);
    expect(test.json.IsValid).toBe(true);
  });
});

describe('Ctrl-C, SIGTERM or a closed terminal (SIGHUP) during a backup', () => {
  let d: Drill;
  let marker: string;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    marker = `stuck-export-${path.basename(d.root)}`;
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    // Its first bytes flow at once (so the job is well under way), then it waits to be stopped; the
    // marker names its shell in the process table, so a program left running is seen.
    await d.registerCommand('Stuck', ['sh', '-c', `echo first; sleep 60; : ${marker}`], ['sh', '-c', 'cat > /dev/null']);
  });
  afterAll(async () => {
    // A program a failing run left behind goes with the test.
    for (const line of processesWith(marker).split('\n').filter(Boolean)) {
      try {
        process.kill(-Number(line.split(' ')[0]), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await d?.cleanup();
  });

  // SIGHUP: the terminal or the ssh session the command ran in was closed. It once ended the
  // process at once: the .partial folder, the lock and the role's programs (in sessions of their
  // own, so the hang-up never reached them) stayed behind, and no alert was raised.
  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)(
    '%s stops it in order: exit 130 with the error said, nothing committed, the job Failed, an alert, the lock free, no program left running',
    async (signal) => {
      const earlier = new Set(list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).map((b) => b.Name));
      const child = spawnCli(d.home, ['Start-InfrastructureBackup']);
      await until('a .partial folder', async () => (await partialFolders(d.share)).length > 0);
      // Long enough for the job to have loaded what it needs for its end (conf's atomic writes,
      // which hook signals of their own), short of the export's 60 s.
      await sleep(1000);
      child.kill(signal);
      const ended = await child;
      expect(ended.exitCode, String(ended.stderr)).toBe(130);
      expect(parseErrors(String(ended.stderr)).map((e) => e.ErrorId)).toContain('PipelineStopped');
      expect(processesWith(marker)).toBe('');

      // Files was backed up before the stop, yet nothing was committed and nothing is left over.
      expect(await partialFolders(d.share)).toEqual([]);
      const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).filter((b) => !earlier.has(b.Name));
      expect(listed.filter((b) => b.Status !== 'Failed')).toEqual([]);
      const job = listed.find((b) => b.Progress && /stopped/.test(b.Progress));
      expect(job, JSON.stringify(listed)).toBeDefined();
      const alerts = list(expectOk(await d.cli(['Get-BackupAlert'])).json);
      expect(
        alerts.some((a) => a.Status === 'Active' && a.BackupName === job.Name),
        JSON.stringify(alerts),
      ).toBe(true);

      // The lock was released: the next backup neither waits nor takes over a stale lock.
      await expect(fs.access(path.join(d.home, 'job.lock'))).rejects.toThrow();
      const next = await d.cli(['Start-InfrastructureBackup', '-RoleName', 'Files']);
      expect(next.code, next.stderr).toBe(0);
    },
  );
});
