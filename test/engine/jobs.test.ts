import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deadPid, expectOk, makeDrill, runCli, spawnCli, resultOf, type Drill, list } from '../support/cli.js';

/**
 * Backups as jobs: a role that fails makes a partial backup and an alert that closes once fixed;
 * a backup where everything fails commits nothing but is remembered; one job at a time, a dead
 * holder's lock is taken over; -AsJob returns at once and the job finishes on its own.
 */

const broken = (message: string) => ['sh', '-c', `echo '${message}' >&2; exit 3`];
const swallow = ['sh', '-c', 'cat >/dev/null'];

async function withDrill(fn: (d: Drill) => Promise<void>): Promise<void> {
  const d = await makeDrill({ roles: false });
  try {
    await fn(d);
  } finally {
    await d.cleanup();
  }
}

async function guidFoldersOnShare(share: string): Promise<string[]> {
  const root = path.join(share, 'MASBackup');
  const out: string[] = [];
  for (const stamp of await fs.readdir(root).catch(() => [] as string[])) {
    for (const child of await fs.readdir(path.join(root, stamp))) out.push(`${stamp}/${child}`);
  }
  return out;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe();
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Turns the scheduler on, every 4 hours, on the drill's share and key. */
async function enableScheduler(d: Drill): Promise<void> {
  const args = [
    'Set-BackupShare',
    '-Path',
    d.share,
    '-EncryptionKey',
    '-',
    '-IsBackupSchedulerEnabled',
    '$true',
    '-BackupFrequencyInHours',
    '4',
  ];
  expectOk(await d.cli(args, { stdin: `${d.key}\n` }));
}

describe.concurrent('backup jobs', () => {
  it('a failing role makes a PartialSucceeded backup and an alert, which closes once the role is fixed', () =>
    withDrill(async (d) => {
      await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
      await d.registerCommand('Broken', broken('export exploded: disk on fire'), swallow);

      const r = await d.cli(['Start-InfrastructureBackup']);
      expect(r.code, r.stderr).toBe(3);
      expect(r.json.Status).toBe('PartialSucceeded');
      const role = r.json.RoleStatus.find((x: any) => x.RoleName === 'Broken');
      expect(role.Status).toBe('Failed');
      expect(role.Error).toContain('export exploded: disk on fire');
      expect(r.json.RoleStatus.find((x: any) => x.RoleName === 'Files').Status).toBe('Succeeded');
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatchObject({ ErrorId: 'RoleBackupFailed', Terminating: false, TargetObject: 'Broken' });
      expect(r.errors[0]!.Message).toContain('disk on fire');

      // The share holds it, as PartialSucceeded, for anyone who lists it.
      const listed = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', r.json.Name])).json;
      expect(listed.Status).toBe('PartialSucceeded');
      expect(listed.IsCloudRecoveryReady).toBe(false);
      expect(listed.RoleStatus.find((x: any) => x.RoleName === 'Broken').Error).toContain('disk on fire');
      await fs.access(path.join(await d.backupFolder(r.json.Name), 'BackupInfo.xml'));
      await expect(fs.access(path.join(await d.backupFolder(r.json.Name), 'Broken.azsrole'))).rejects.toThrow();

      const alerts = list(expectOk(await d.cli(['Get-BackupAlert'])).json);
      const active = alerts.filter((a) => a.Status === 'Active');
      expect(active).toHaveLength(1);
      expect(active[0]).toMatchObject({ AlertType: 'BackupGeneral', BackupName: r.json.Name });
      expect(active[0].Description).toContain('disk on fire');
      expect(active[0].Remediation.length).toBeGreaterThan(0);

      // The role fixed: registered again over the broken one (-Force replaces a registered role).
      await d.registerCommand('Broken', ['echo', 'working again'], swallow, ['-Force']);
      const fixed = await d.cli(['Start-InfrastructureBackup']);
      expect(fixed.code, fixed.stderr).toBe(0);
      expect(fixed.json.Status).toBe('Succeeded');
      expect(fixed.errors).toEqual([]);
      const after = list(expectOk(await d.cli(['Get-BackupAlert'])).json);
      expect(after.filter((a) => a.Status === 'Active')).toEqual([]);
      expect(after.find((a) => a.Id === active[0].Id)?.Status).toBe('Closed');
      expect(list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json)).toEqual([]);
    }));

  it('a role error with control characters (colour codes) is recorded, and BackupInfo.xml stays well-formed XML 1.0', () =>
    withDrill(async (d) => {
      await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
      await d.registerCommand('Colourful', ['sh', '-c', "printf '\\033[31mexport failed\\033[0m\\n' >&2; exit 1"], swallow);
      const r = await d.cli(['Start-InfrastructureBackup']);
      expect(r.code, r.stderr).toBe(3);
      const xml = await fs.readFile(path.join(await d.backupFolder(r.json.Name), 'BackupInfo.xml'), 'utf8');
      expect(xml).not.toMatch(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u);
      expect(xml).toContain('\uFFFD[31mexport failed\uFFFD[0m');
      const listed = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', r.json.Name])).json;
      expect(listed.Status).toBe('PartialSucceeded');
      expect(listed.RoleStatus.find((x: any) => x.RoleName === 'Colourful').Error).toContain('export failed');

      // A definition no BackupInfo.xml could hold is refused when it is registered.
      const refused = await d.cli([
        'Register-InfrastructureRole',
        '-Name',
        'Odd',
        '-Provider',
        'directory',
        '-Path',
        `${d.files}\u001b[0m`,
      ]);
      expect(refused.code).toBe(2);
      expect(refused.errors[0]?.ErrorId).toBe('RoleDefinitionNotRecordable');
    }));

  it('no program it starts inherits a secret given in AZSBACKUP_<NAME>', () =>
    withDrill(async (d) => {
      const seen = path.join(d.root, 'import-env.txt');
      await d.registerCommand('Env', ['echo', 'data'], ['sh', '-c', `env > '${seen}'; cat >/dev/null`]);
      const backup = await d.backup();
      const restore = await runCli(d.home, ['Restore-AzsBackup', '-Name', backup.Name, '-Path', d.share], {
        env: { AZSBACKUP_ENCRYPTIONKEY: d.key! },
      });
      expect(restore.code, restore.stderr).toBe(0);
      const env = await fs.readFile(seen, 'utf8');
      expect(env).toContain('AZSBACKUP_HOME=');
      expect(env).not.toContain('AZSBACKUP_ENCRYPTIONKEY');
      expect(env).not.toContain(d.key!);
    }));

  it('a postgres connection string with a password in it is refused, never echoed nor stored', () =>
    withDrill(async (d) => {
      for (const uri of [
        'postgresql://admin:1Secret@db:5432/app',
        'postgresql://admin:Secret@db/app',
        'postgresql://admin@db/app?password=Secret',
      ]) {
        const r = await d.cli(['Register-InfrastructureRole', '-Name', 'Pg', '-Provider', 'postgres', '-ConnectionString', uri]);
        expect(r.code, uri).toBe(2);
        expect(r.errors[0]?.ErrorId).toBe('PostgresPasswordInConnectionString');
        expect(r.stderr).not.toContain('Secret');
      }
      expect(await fs.readFile(path.join(d.home, 'config.json'), 'utf8').catch(() => '')).not.toContain('Secret');
      const ok = await d.cli(
        [
          'Register-InfrastructureRole',
          '-Name',
          'Pg',
          '-Provider',
          'postgres',
          '-ConnectionString',
          'postgresql://admin@db:5432/app',
          '-DatabasePassword',
          '-',
        ],
        { stdin: 'Secret\n' },
      );
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.json.Source).toBe('postgresql://admin@db:5432/app');
      expect(await fs.readFile(path.join(d.home, 'config.json'), 'utf8')).not.toContain('Secret');
    }));

  it('Set-BackupShare changes only what it was given: another one that ran meanwhile keeps its change', () =>
    withDrill(async (d) => {
      const { default: setBackupShare } = await import('../../cmdlets/Set-BackupShare.js');
      const whileAsking = async (): Promise<boolean> => {
        // Another operator, while this one is asked to confirm.
        expectOk(await d.cli(['Set-BackupShare', '-AlertWebhookUri', 'https://hooks.example/abc', '-SkipValidation']));
        return true;
      };
      await setBackupShare({
        params: { BackupFrequencyInHours: 6, SkipValidation: true },
        home: d.home,
        shouldProcess: whileAsking,
      } as never);
      const config = JSON.parse(await fs.readFile(path.join(d.home, 'config.json'), 'utf8'));
      expect(config.scheduler.frequencyInHours).toBe(6);
      expect(config.alertSinks).toEqual({ webhookUri: 'https://hooks.example/abc' });
      expect(config.encryption.keyId).toBe(d.keyId);
      // An empty -AlertCommand removes the command, as its help says.
      expectOk(await d.cli(['Set-BackupShare', '-AlertCommand', '/bin/true', '-SkipValidation']));
      expect(JSON.parse(await fs.readFile(path.join(d.home, 'config.json'), 'utf8')).alertSinks.command).toEqual(['/bin/true']);
      expectOk(await d.cli(['Set-BackupShare', '-AlertCommand', '', '-SkipValidation']));
      expect(JSON.parse(await fs.readFile(path.join(d.home, 'config.json'), 'utf8')).alertSinks.command).toBeUndefined();
      // The webhook's address may be its credential: shown only as where it goes.
      const shown = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
      expect(shown.AlertWebhookUri).toBe('https://hooks.example/…');
      expect(JSON.stringify(shown)).not.toContain('/abc');
    }));

  it('a key left in AZSBACKUP_ENCRYPTIONKEY never replaces the configured encryption unless -EncryptionKey is named', () =>
    withDrill(async (d) => {
      const other = expectOk(await d.cli(['New-EncryptionKey'])).json;
      const env = { AZSBACKUP_ENCRYPTIONKEY: other.Key as string };
      const keyId = async () => JSON.parse(await fs.readFile(path.join(d.home, 'config.json'), 'utf8')).encryption.keyId;
      expectOk(await d.cli(['Set-BackupShare', '-BackupFrequencyInHours', '6', '-SkipValidation'], { env }));
      expect(await keyId()).toBe(d.keyId);
      expectOk(await d.cli(['Set-BackupShare', '-EncryptionKey', '-SkipValidation'], { env }));
      expect(await keyId()).toBe(other.KeyId);
      // Nor does it clash with a certificate given now.
      const cer = path.join(d.root, 'rotated.cer');
      expectOk(
        await d.cli(
          ['New-EncryptionKey', '-Certificate', '-CertificatePath', cer, '-PfxPath', path.join(d.root, 'rotated.pfx'), '-PfxPassword', '-'],
          { stdin: 'pfx-password\n' },
        ),
      );
      expect(expectOk(await d.cli(['Set-BackupShare', '-EncryptionCertPath', cer, '-SkipValidation'], { env })).json.EncryptionMode).toBe(
        'Certificate',
      );
    }));

  it('New-EncryptionKey -Force replaces a file with an owner-only one, loose mode or symbolic link and all', () =>
    withDrill(async (d) => {
      const keyFile = path.join(d.root, 'old.key');
      await fs.writeFile(keyFile, 'old', { mode: 0o644 });
      await fs.chmod(keyFile, 0o644);
      expect((await d.cli(['New-EncryptionKey', '-KeyPath', keyFile])).code).toBe(2);
      expectOk(await d.cli(['New-EncryptionKey', '-KeyPath', keyFile, '-Force']));
      expect((await fs.stat(keyFile)).mode & 0o777).toBe(0o600);
      expect((await fs.readFile(keyFile, 'utf8')).trim()).toHaveLength(88);
      const victim = path.join(d.root, 'victim');
      await fs.writeFile(victim, 'not a key');
      const pointing = path.join(d.root, 'link.pfx');
      await fs.symlink(victim, pointing);
      expectOk(
        await d.cli(
          [
            'New-EncryptionKey',
            '-Certificate',
            '-CertificatePath',
            path.join(d.root, 'c.cer'),
            '-PfxPath',
            pointing,
            '-PfxPassword',
            '-',
            '-Force',
          ],
          { stdin: 'pfx-password\n' },
        ),
      );
      expect(await fs.readFile(victim, 'utf8')).toBe('not a key');
      expect((await fs.lstat(pointing)).isSymbolicLink()).toBe(false);
      expect((await fs.stat(pointing)).mode & 0o777).toBe(0o600);
      expect((await fs.readdir(d.root)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    }));

  it('when every role fails the backup is Failed (exit 1): nothing on the share, the job is remembered', () =>
    withDrill(async (d) => {
      await d.registerCommand('BrokenA', broken('first role broken'), swallow);
      await d.registerCommand('BrokenB', broken('second role broken'), swallow);

      const r = await d.cli(['Start-InfrastructureBackup']);
      expect(r.code, r.stderr).toBe(1);
      expect(r.json.Status).toBe('Failed');
      expect(r.json.RoleStatus.map((x: any) => x.Status)).toEqual(['Failed', 'Failed']);
      expect(r.errors.map((e) => e.ErrorId)).toEqual(['RoleBackupFailed', 'RoleBackupFailed']);
      expect(await guidFoldersOnShare(d.share)).toEqual([]);

      const all = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
      expect(all.map((b) => [b.Name, b.Status])).toEqual([[r.json.Name, 'Failed']]);
      const one = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', r.json.Name])).json;
      const errors = one.RoleStatus.map((x: any) => x.Error).join(' ');
      expect(errors).toContain('first role broken');
      expect(errors).toContain('second role broken');
      // Nothing to test or restore: it is not on the share.
      const test = await d.cli(['Test-InfrastructureBackup', '-Name', r.json.Name]);
      expect(test.code).toBe(10);
      expect(list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json).map((a) => a.AlertType)).toEqual(['BackupGeneral']);
    }));

  it('the scheduler: a due backup that fails exits 1 and leaves BackupOverdue active; only a backup on the share closes it', () =>
    withDrill(async (d) => {
      await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
      await enableScheduler(d);
      await d.backup();
      // The last backup that succeeded was three days ago, and every role fails now.
      const configFile = path.join(d.home, 'config.json');
      const config = JSON.parse(await fs.readFile(configFile, 'utf8'));
      await fs.writeFile(
        configFile,
        JSON.stringify({ ...config, lastSuccessfulBackupTime: new Date(Date.now() - 3 * 86_400_000).toISOString() }),
      );
      expectOk(await d.cli(['Unregister-InfrastructureRole', '-Name', 'Files']));
      await d.registerCommand('Broken', broken('export exploded'), swallow);

      const failed = await d.cli(['Invoke-BackupScheduler']);
      expect(failed.code, failed.stderr).toBe(1);
      expect(failed.json.Status).toBe('Failed');
      const active = async () =>
        list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json)
          .map((a) => a.AlertType)
          .sort();
      expect(await active()).toEqual(['BackupGeneral', 'BackupOverdue']);

      // The role fixed: registered again over the broken one (-Force replaces a registered role).
      await d.registerCommand('Broken', ['echo', 'working again'], swallow, ['-Force']);
      const fixed = await d.cli(['Invoke-BackupScheduler']);
      expect(fixed.code, fixed.stderr).toBe(0);
      expect(fixed.json.Status).toBe('Succeeded');
      expect(await active()).toEqual([]);
    }));

  it('the scheduler: BackupOverdue also comes when no backup has ever succeeded since it was turned on', () =>
    withDrill(async (d) => {
      await d.registerCommand('Broken', broken('never worked'), swallow);
      await enableScheduler(d);
      const configFile = path.join(d.home, 'config.json');
      const config = JSON.parse(await fs.readFile(configFile, 'utf8'));
      expect(Date.now() - Date.parse(config.scheduler.enabledAt)).toBeLessThan(60_000);
      const active = async () =>
        list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json)
          .map((a) => a.AlertType)
          .sort();

      // Just turned on: failing, but not yet overdue.
      expect((await d.cli(['Invoke-BackupScheduler'])).code).toBe(1);
      expect(await active()).toEqual(['BackupGeneral']);

      // Turned on three days ago (twice 4 hours is long past): overdue.
      config.scheduler.enabledAt = new Date(Date.now() - 3 * 86_400_000).toISOString();
      await fs.writeFile(configFile, JSON.stringify(config));
      expect((await d.cli(['Invoke-BackupScheduler'])).code).toBe(1);
      expect(await active()).toEqual(['BackupGeneral', 'BackupOverdue']);
      // Setting the share again with the scheduler still on does not restart the count.
      expectOk(
        await d.cli(['Set-BackupShare', '-Path', d.share, '-EncryptionKey', '-', '-BackupFrequencyInHours', '6'], { stdin: `${d.key}\n` }),
      );
      expect(JSON.parse(await fs.readFile(configFile, 'utf8')).scheduler.enabledAt).toBe(config.scheduler.enabledAt);
      // Turned off, there is no schedule to be late for: the next tick closes it.
      expectOk(await d.cli(['Set-BackupShare', '-IsBackupSchedulerEnabled', '$false', '-SkipValidation']));
      expect(await d.cli(['Invoke-BackupScheduler'])).toMatchObject({ code: 0 });
      expect(await active()).toEqual(['BackupGeneral']);
    }));

  it('a queued job whose configuration changed before it started is recorded Failed, with an alert, and lets its lock go', () =>
    withDrill(async (d) => {
      // What the job runner behind -AsJob does, in-process; no role is registered any more.
      const { queuedRecord, runBackupJob } = await import('../../src/engine/backup-job.js');
      const { acquireJobLock } = await import('../../src/engine/job.js');
      const { JobStore } = await import('../../src/engine/job-store.js');
      const { processStartTime } = await import('../../src/config/file-lock.js');
      const { silentProgress } = await import('../../src/progress.js');
      const name = randomUUID();
      new JobStore(d.home).save({ ...queuedRecord(name, d.share, []), Pid: process.pid, PidStartTime: processStartTime(process.pid) });
      const lock = acquireJobLock(d.home, `backup ${name}`);
      await expect(runBackupJob({ home: d.home, name, lock, progress: silentProgress })).rejects.toMatchObject({
        errorId: 'NoRolesRegistered',
      });

      const job = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', name])).json;
      expect(job.Status).toBe('Failed');
      expect(job.Progress).toMatch(/could not start: No infrastructure roles are registered/);
      const alerts = list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json);
      expect(alerts.map((a) => [a.AlertType, a.BackupName])).toEqual([['BackupGeneral', name]]);
      await expect(fs.access(path.join(d.home, 'job.lock'))).rejects.toThrow();
    }));

  it('CertificateExpiring: raised by the scheduler within 30 days of expiry, closed as soon as a new certificate is set', () =>
    withDrill(async (d) => {
      const cert = async (name: string, days: number): Promise<string> => {
        const cer = path.join(d.root, `${name}.cer`);
        expectOk(
          await d.cli(
            [
              'New-EncryptionKey',
              '-Certificate',
              '-CertificatePath',
              cer,
              '-PfxPath',
              path.join(d.root, `${name}.pfx`),
              '-PfxPassword',
              '-',
              '-ValidityDays',
              String(days),
            ],
            { stdin: 'pfx-password\n' },
          ),
        );
        return cer;
      };
      const active = async () => list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json).map((a) => a.AlertType);
      expectOk(await d.cli(['Set-BackupShare', '-EncryptionCertPath', await cert('short', 10), '-SkipValidation']));
      expect(await active()).toEqual(['CertificateExpiring']);
      expectOk(await d.cli(['Invoke-BackupScheduler']));
      expect(await active()).toEqual(['CertificateExpiring']);
      expectOk(await d.cli(['Set-BackupShare', '-EncryptionCertPath', await cert('long', 365), '-SkipValidation']));
      expect(await active()).toEqual([]);
    }));

  it("one job at a time: a second backup meanwhile is JobLockHeld (exit 11); a dead holder's lock is taken over", () =>
    withDrill(async (d) => {
      // The export sleeps until the test opens the gate, so a loaded machine cannot let it finish early.
      const gate = path.join(d.root, 'gate');
      await d.registerCommand(
        'Slow',
        ['sh', '-c', `while [ ! -e '${gate}' ]; do sleep 0.1; done; tar -C '${d.tarred}' -cf - .`],
        ['tar', '-C', d.tarred, '-xpf', '-'],
      );
      const lockFile = path.join(d.home, 'job.lock');

      const first = spawnCli(d.home, ['Start-InfrastructureBackup']);
      await until('the first backup to take the lock', async () => ((await fs.stat(lockFile).catch(() => undefined)) ? true : undefined));
      const second = await d.cli(['Start-InfrastructureBackup']);
      expect(second.code, second.stderr).toBe(11);
      expect(second.errors[0]).toMatchObject({ ErrorId: 'JobLockHeld', Category: 'ResourceBusy' });
      expect(second.json).toBeUndefined();
      // Restores and prunes wait their turn too.
      const prune = await d.cli(['Invoke-BackupPrune']);
      expect(prune.code).toBe(11);
      expect(prune.errors[0]?.ErrorId).toBe('JobLockHeld');

      await fs.writeFile(gate, '');
      const done = await first;
      const firstResult = resultOf(done.exitCode ?? -1, String(done.stdout), String(done.stderr));
      expect(firstResult.code, firstResult.stderr).toBe(0);
      expect(firstResult.json.Status).toBe('Succeeded');
      await expect(fs.access(lockFile)).rejects.toThrow(); // released

      // A holder that died without releasing: its lock is stale.
      const pid = await deadPid();
      await fs.writeFile(
        lockFile,
        JSON.stringify({
          pid,
          startTime: null,
          hostname: hostname(),
          acquiredAt: new Date(Date.now() - 60_000).toISOString(),
          purpose: 'backup of a crashed run',
        }),
      );
      const taken = await d.cli(['Start-InfrastructureBackup']);
      expect(taken.code, taken.stderr).toBe(0);
      expect(taken.json.Status).toBe('Succeeded');
      await expect(fs.access(lockFile)).rejects.toThrow();
    }));

  it('-AsJob returns at once and the job finishes Succeeded on its own', () =>
    withDrill(async (d) => {
      await d.registerCommand('Slow', ['sh', '-c', `sleep 2; tar -C '${d.tarred}' -cf - .`], ['tar', '-C', d.tarred, '-xpf', '-']);
      await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);

      const started = Date.now();
      const r = await d.cli(['Start-InfrastructureBackup', '-AsJob']);
      expect(r.code, r.stderr).toBe(0);
      expect(['Queued', 'Running']).toContain(r.json.Status);
      expect(r.json.Name).toMatch(/^[0-9a-f-]{36}$/);
      const name = r.json.Name as string;

      // Its record says it is not finished yet: the slow role alone takes 2 s.
      const early = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', name])).json;
      if (Date.now() - started < 2000) expect(['Queued', 'Running']).toContain(early.Status);

      const final = await until(
        'the job to finish',
        async () => {
          const got = await d.cli(['Get-InfrastructureBackup', '-Name', name]);
          return got.code === 0 && !['Queued', 'Running'].includes(got.json.Status) ? got.json : undefined;
        },
        60_000,
      );
      expect(final.Status).toBe('Succeeded');
      expect(final.RoleStatus.map((x: any) => [x.RoleName, x.Status]).sort()).toEqual([
        ['Files', 'Succeeded'],
        ['Slow', 'Succeeded'],
      ]);
      await fs.access(path.join(await d.backupFolder(name), 'BackupInfo.xml'));
      const test = await d.cli(['Test-InfrastructureBackup', '-Name', name, ...d.decryptArgs().args], { stdin: d.decryptArgs().stdin });
      expect(test.code, test.stderr).toBe(0);
      // The job let go of the lock: another backup can run.
      await until('the lock to be released', async () =>
        (await fs.stat(path.join(d.home, 'job.lock')).catch(() => undefined)) ? undefined : true,
      );
      expect((await d.cli(['Start-InfrastructureBackup'])).code).toBe(0);
    }));
});
