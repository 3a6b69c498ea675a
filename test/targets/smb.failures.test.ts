import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, resultOf, spawnCli, type CliResult } from '../support/cli.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';
import { list, makeSmbDrill, partialsUnder, writeRandom, type SmbDrill } from '../support/smb-drill.js';

/**
 * What an operator sees when the share fails, through the real command line against real Samba:
 * the exit code and ErrorId of the command, the alert the job raises (with its remediation), that
 * a later good job closes it, and that a failure never leaves something that lists as a backup.
 */

const WRONG = 'not-the-password';

async function alerts(d: SmbDrill, status?: 'Active' | 'Closed'): Promise<any[]> {
  return list(expectOk(await d.cli(['Get-BackupAlert', ...(status ? ['-Status', status] : [])]), 'Get-BackupAlert').json);
}

function expectShareAlert(all: any[], type: string): any {
  const active = all.filter((a) => a.Status === 'Active');
  expect(active.map((a) => a.AlertType)).toEqual([type]);
  const alert = active[0];
  expect(alert.Remediation.length).toBeGreaterThanOrEqual(2);
  expect(alert.Remediation.every((s: unknown) => typeof s === 'string' && s.length > 10)).toBe(true);
  expect(alert.Severity).toBe('Critical');
  expect(alert.Title).toBeTruthy();
  return alert;
}

function expectFailure(r: CliResult, code: number, errorId: string): void {
  if (r.code !== code) throw new Error(`expected exit ${code}, got ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  expect(r.errors.map((e) => e.ErrorId)).toContain(errorId);
  const record = r.errors.find((e) => e.ErrorId === errorId)!;
  expect(record.RecommendedAction).toBeTruthy();
  expect(record.ExitCode).toBe(code);
}

/** Backups Get-InfrastructureBackup lists that claim to be usable. */
async function usableBackups(d: SmbDrill): Promise<any[]> {
  return list(expectOk(await d.cli(['Get-InfrastructureBackup']), 'Get-InfrastructureBackup').json).filter((b) => b.Status !== 'Failed');
}

describe.skipIf(!sambaAvailable())('SMB credentials and path failures', () => {
  let samba: SambaServer;
  let d: SmbDrill;

  beforeAll(async () => {
    samba = await startSamba();
    d = await makeSmbDrill(samba);
  });
  afterAll(async () => {
    await d?.cleanup();
    await samba?.stop();
  });

  it('Test-BackupShare with a wrong password: exit 13, ShareAccessDenied, reachable but not authenticated', async () => {
    const r = await d.cli(['Test-BackupShare', '-Path', d.path, '-UserName', samba.userName, '-Password', '-'], { stdin: `${WRONG}\n` });
    expectFailure(r, 13, 'ShareAccessDenied');
    expect(r.errors.find((e) => e.ErrorId === 'ShareAccessDenied')!.Category).toBe('AuthenticationError');
    expect(r.json).toMatchObject({ Reachable: true, Authenticated: false, Writable: false });
    expect(r.json.Steps.find((s: any) => s.Name === 'Authenticate')).toMatchObject({ Succeeded: false });
  });

  it('Set-BackupShare with a wrong password: exit 13 and the working configuration is kept', async () => {
    const before = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
    const r = await d.setShare(['-BackupRetentionPeriodInDays', '9'], WRONG);
    expectFailure(r, 13, 'ShareAccessDenied');
    expect(expectOk(await d.cli(['Get-BackupConfiguration'])).json).toEqual(before);
    expect(expectOk(await d.cli(['Test-BackupShare'])).json.Authenticated).toBe(true);
  });

  it('a backup with a password that changed since: exit 13 and an Active ShareAuthentication alert with remediation', async () => {
    // The password saved earlier no longer works: -SkipValidation saves it as an operator who mistyped would.
    expectOk(await d.setShare(['-SkipValidation'], WRONG), 'Set-BackupShare -SkipValidation');
    const r = await d.cli(['Start-InfrastructureBackup']);
    expectFailure(r, 13, 'ShareAccessDenied');
    const alert = expectShareAlert(await alerts(d), 'ShareAuthentication');
    expect(alert.Description).toMatch(/refused the credentials|may not/);
    expect(alert.Description).not.toContain(WRONG);
    // The failed job may list as a job record, never as a backup.
    const listed = await d.cli(['Get-InfrastructureBackup', '-Path', d.path, '-UserName', samba.userName, '-Password', '-'], {
      stdin: `${samba.password}\n`,
    });
    expect(list(expectOk(listed).json).filter((b) => b.Status !== 'Failed')).toEqual([]);
  });

  it('the right password again: the next backup succeeds and closes the ShareAuthentication alert', async () => {
    expectOk(await d.setShare(), 'Set-BackupShare');
    const b = await d.backup();
    expect(b.Status).toBe('Succeeded');
    const all = await alerts(d);
    expect(all.filter((a) => a.Status === 'Active')).toEqual([]);
    expect(all.find((a) => a.AlertType === 'ShareAuthentication')).toMatchObject({ Status: 'Closed' });
  });

  it('Test-BackupShare on a share name that does not exist: exit 10, SharePathNotFound', async () => {
    const r = await d.cli(
      ['Test-BackupShare', '-Path', `smb://127.0.0.1:${samba.port}/nosuchshare`, '-UserName', samba.userName, '-Password', '-'],
      { stdin: `${samba.password}\n` },
    );
    expectFailure(r, 10, 'SharePathNotFound');
    // The account was accepted: what failed is opening the share, not signing in.
    expect(r.json).toMatchObject({ Reachable: true, Authenticated: true });
    expect(r.json.Steps.at(-1)).toMatchObject({ Name: 'Open', Succeeded: false });
  });

  it('Test-BackupShare on a folder that does not exist on the share: exit 10, SharePathNotFound', async () => {
    const r = await d.cli(['Test-BackupShare', '-Path', `${samba.smbUrl}/no/such/folder`, '-UserName', samba.userName, '-Password', '-'], {
      stdin: `${samba.password}\n`,
    });
    expectFailure(r, 10, 'SharePathNotFound');
  });

  it('a backup to a share name that does not exist: exit 10 and a SharePath alert; the good share is untouched', async () => {
    const good = (await usableBackups(d)).map((b) => b.Name);
    const r0 = await d.cli(
      [
        'Set-BackupShare',
        '-Path',
        `smb://127.0.0.1:${samba.port}/nosuchshare/x`,
        '-UserName',
        samba.userName,
        '-Password',
        '-',
        '-SkipValidation',
      ],
      { stdin: `${samba.password}\n` },
    );
    expectOk(r0, 'Set-BackupShare -SkipValidation');
    const r = await d.cli(['Start-InfrastructureBackup']);
    expectFailure(r, 10, 'SharePathNotFound');
    const alert = expectShareAlert(await alerts(d), 'SharePath');
    expect(alert.BackupName).toMatch(/^[0-9a-f-]{36}$/);

    expectOk(await d.setShare(), 'Set-BackupShare');
    expect((await usableBackups(d)).map((b) => b.Name)).toEqual(good);
    await d.backup();
    expect(await alerts(d, 'Active')).toEqual([]);
  });
});

describe.skipIf(!sambaAvailable())('SMB server down', () => {
  let samba: SambaServer;
  let d: SmbDrill;
  let good: any;

  beforeAll(async () => {
    samba = await startSamba();
    d = await makeSmbDrill(samba, { randomBytes: 1 << 20 });
    good = await d.backup();
  });
  afterAll(async () => {
    await d?.cleanup();
    await samba?.stop();
  });

  it('server stopped before a job: Test-BackupShare and the backup exit 10, ShareConnectivity alert', async () => {
    await samba.kill();
    const t = await d.cli(['Test-BackupShare']);
    expectFailure(t, 10, 'ShareUnreachable');
    expect(t.json).toMatchObject({ Reachable: false, Authenticated: false });

    const r = await d.cli(['Start-InfrastructureBackup']);
    expectFailure(r, 10, 'ShareUnreachable');
    expectShareAlert(await alerts(d), 'ShareConnectivity');
    // The same cause again refreshes the one alert rather than adding another.
    await d.cli(['Start-InfrastructureBackup']);
    expect((await alerts(d)).filter((a) => a.AlertType === 'ShareConnectivity')).toHaveLength(1);
  });

  it('after the server is back, a successful backup closes the ShareConnectivity alert', async () => {
    await samba.restart();
    const b = await d.backup();
    expect(b.Status).toBe('Succeeded');
    const all = await alerts(d);
    expect(all.find((a) => a.AlertType === 'ShareConnectivity')).toMatchObject({ Status: 'Closed' });
    expect(all.filter((a) => a.Status === 'Active')).toEqual([]);
    expect(list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Closed'])).json).map((a) => a.AlertType)).toContain(
      'ShareConnectivity',
    );
  });

  it('server killed in the middle of a backup: the job fails, no partial backup lists, earlier backups stay intact', async () => {
    await writeRandom(path.join(d.files, 'big.bin'), 60 << 20);
    const listedBefore = (await usableBackups(d)).map((b) => b.Name);
    const child = spawnCli(d.home, ['Start-InfrastructureBackup'], { timeoutMs: 300_000 });

    // Kill smbd once role data is streaming: into a pack being written under the repository
    // (or, for a full copy, into the backup's uncommitted `<name>.partial` folder).
    const mas = path.join(d.diskFolder, 'MASBackup');
    const packs = path.join(d.diskFolder, 'AzsRepository', 'packs');
    const deadline = Date.now() + 60_000;
    let streaming = false;
    const large = async (file: string) =>
      (await fs.stat(file).then(
        (s) => s.size,
        () => 0,
      )) >
      2 << 20;
    while (!streaming && Date.now() < deadline) {
      for (const f of await fs.readdir(packs).catch(() => [] as string[]))
        if (f.startsWith('.pending-') && (await large(path.join(packs, f)))) streaming = true;
      for (const folder of (await partialsUnder(mas)).filter((p) => p.endsWith('.partial'))) {
        for (const f of await fs.readdir(path.join(mas, folder)).catch(() => [] as string[]))
          if (await large(path.join(mas, folder, f))) streaming = true;
      }
      if (!streaming) await new Promise((r) => setTimeout(r, 20));
    }
    expect(streaming).toBe(true);
    await samba.kill();
    const done = await child;
    const r = resultOf(done.exitCode ?? -1, String(done.stdout), String(done.stderr));
    // A broken connection is the share's failure, not a role's: exit 10, ShareUnreachable.
    expectFailure(r, 10, 'ShareUnreachable');
    expectShareAlert(await alerts(d), 'ShareConnectivity');

    await samba.restart();
    const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(listed.filter((b) => b.Status === 'Succeeded').map((b) => b.Name)).toEqual(listedBefore);
    // The interrupted job may show as a Failed job record; never as a backup with data.
    for (const b of listed.filter((x) => !listedBefore.includes(x.Name))) {
      expect(b.Status).toBe('Failed');
      expect(b.IsCloudRecoveryReady).toBe(false);
    }
    const keyed = expectOk(
      await d.cli(['Test-InfrastructureBackup', '-Name', good.Name, '-EncryptionKey', '-'], { stdin: `${d.key}\n` }),
      'keyed Test-InfrastructureBackup of the earlier backup',
    );
    expect(keyed.json.IsValid).toBe(true);

    // Whatever the broken connection left behind is a leftover that prune removes.
    const pruned = expectOk(await d.cli(['Invoke-BackupPrune', '-Confirm:$false']), 'Invoke-BackupPrune').json;
    expect(pruned.BackupsRemoved).toBe(0);
    expect(await partialsUnder(mas)).toEqual([]);
    expect((await usableBackups(d)).map((b) => b.Name)).toEqual(listedBefore);

    // And the next backup works and closes the alert.
    await fs.rm(path.join(d.files, 'big.bin'));
    expect((await d.backup()).Status).toBe('Succeeded');
    expect(await alerts(d, 'Active')).toEqual([]);
  });
});

describe.skipIf(!sambaAvailable())('SMB share too small', () => {
  let samba: SambaServer;
  let d: SmbDrill;

  beforeAll(async () => {
    samba = await startSamba({ maxDiskSizeMB: 24 });
    d = await makeSmbDrill(samba);
  });
  afterAll(async () => {
    await d?.cleanup();
    await samba?.stop();
  });

  it("with room for what retention needs, Test-BackupShare passes and reports the share's capped free space", async () => {
    const r = expectOk(await d.cli(['Test-BackupShare']), 'Test-BackupShare');
    expect(r.json.HasEnoughCapacity).toBe(true);
    expect(r.json.AvailableCapacity).toBeGreaterThan(0);
    expect(r.json.AvailableCapacity).toBeLessThanOrEqual(24 << 20);
  });

  it('once retention needs more than is free: Test-BackupShare HasEnoughCapacity false, exit 14, ShareCapacityExceeded', async () => {
    // 6 MiB of random data, kept 2 days at 12 h: five backups, 30 MiB, on a 24 MiB share.
    await writeRandom(path.join(d.files, 'big.bin'), 6 << 20);
    const r = await d.cli(['Test-BackupShare']);
    expectFailure(r, 14, 'ShareCapacityExceeded');
    expect(r.json).toMatchObject({ Reachable: true, Authenticated: true, Writable: true, HasEnoughCapacity: false });
    expect(r.json.RequiredCapacity).toBeGreaterThan(r.json.AvailableCapacity);

    // A first backup fits, and then the measured size drives the same verdict.
    const b = await d.backup();
    expect(b.Status).toBe('Succeeded');
    const after = await d.cli(['Test-BackupShare']);
    expectFailure(after, 14, 'ShareCapacityExceeded');
    expect(after.json.RequiredCapacity).toBeGreaterThanOrEqual(b.Size * 5);

    // Set-BackupShare validates the same way and refuses to save.
    const before = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
    expectFailure(await d.setShare(['-BackupRetentionPeriodInDays', '3']), 14, 'ShareCapacityExceeded');
    expect(expectOk(await d.cli(['Get-BackupConfiguration'])).json).toEqual(before);
  });

  it('a backup larger than the free space: exit 14, a ShareCapacity alert, nothing listed, leftovers pruned', async () => {
    const listedBefore = (await usableBackups(d)).map((b) => b.Name);
    await writeRandom(path.join(d.files, 'big.bin'), 40 << 20);
    const r = await d.cli(['Start-InfrastructureBackup'], { timeoutMs: 300_000 });
    expectFailure(r, 14, 'ShareCapacityExceeded');
    const alert = expectShareAlert(await alerts(d), 'ShareCapacity');
    expect(alert.Remediation.join(' ')).toMatch(/retention|space/i);
    expect((await usableBackups(d)).map((b) => b.Name)).toEqual(listedBefore);

    expectOk(await d.cli(['Invoke-BackupPrune', '-Confirm:$false']), 'Invoke-BackupPrune');
    expect(await partialsUnder(path.join(d.diskFolder, 'MASBackup'))).toEqual([]);

    // Back to a size that fits: the next backup succeeds and closes the alert.
    await fs.rm(path.join(d.files, 'big.bin'));
    expect((await d.backup()).Status).toBe('Succeeded');
    expect(await alerts(d, 'Active')).toEqual([]);
  });
});

describe.skipIf(!sambaAvailable())('a backup to SMB that is stopped', () => {
  let samba: SambaServer;
  let d: SmbDrill;
  let tmp: string;
  /** smbclient's auth files (the share password) while it runs: in the home's private folder, never in TMPDIR. */
  const authFolders = async () => {
    const privateRoot = path.join(d.home, 'private');
    const mine = await fs.readdir(privateRoot).catch(() => [] as string[]);
    const inPrivate = (await Promise.all(mine.map((p) => fs.readdir(path.join(privateRoot, p)).catch(() => [] as string[])))).flat();
    return [...(await fs.readdir(tmp)), ...inPrivate].filter((n) => n.startsWith('azsbackup-smb-'));
  };

  beforeAll(async () => {
    samba = await startSamba();
    d = await makeSmbDrill(samba);
    tmp = path.join(d.root, 'tmp');
    await fs.mkdir(tmp);
    // Its first bytes flow into the share at once, then it waits to be stopped.
    const stuck = ['sh', '-c', 'echo first; exec sleep 60'].map((a) => `-ExportCommand:${a}`);
    expectOk(await d.cli(['Register-InfrastructureRole', '-Name', 'Stuck', '-Provider', 'command', ...stuck, '-ImportCommand:true']));
  });
  afterAll(async () => {
    await d?.cleanup();
    await samba?.stop();
  });

  /** Until the backup writes to the share; `state` says what the process was doing if it never does. */
  async function whileWriting(state: () => Promise<string> = async () => ''): Promise<void> {
    const deadline = Date.now() + 30_000;
    while ((await authFolders()).length === 0 || (await partialsUnder(path.join(d.diskFolder, 'MASBackup'))).length === 0) {
      if (Date.now() > deadline) throw new Error(`the backup never started writing ${await state()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 1000));
  }

  it('in the foreground, by SIGTERM: exit 130 and no password file left in TMPDIR', async () => {
    const child = spawnCli(d.home, ['Start-InfrastructureBackup'], { env: { TMPDIR: tmp }, timeoutMs: 120_000 });
    await whileWriting();
    child.kill('SIGTERM');
    const done = await child;
    expect(done.exitCode, String(done.stderr)).toBe(130);
    expect(await authFolders()).toEqual([]);
  });

  it('as a job (-AsJob), its runner stopped by SIGTERM: the job Failed, an alert, no password file left', async () => {
    const queued = expectOk(await d.cli(['Start-InfrastructureBackup', '-AsJob'], { env: { TMPDIR: tmp } })).json;
    const job = JSON.parse(await fs.readFile(path.join(d.home, 'jobs', `${queued.Name}.json`), 'utf8'));
    await whileWriting(async () => {
      const runner = await fs.readFile(`/proc/${job.Pid}/stat`, 'utf8').catch(() => 'gone');
      const record = await fs.readFile(path.join(d.home, 'jobs', `${queued.Name}.json`), 'utf8').catch((e) => String(e));
      return `(job runner ${job.Pid}: ${runner.slice(0, 80)}; its record: ${record.slice(0, 400)})`;
    });
    process.kill(job.Pid, 'SIGTERM');
    const deadline = Date.now() + 30_000;
    while (
      await fs.access(`/proc/${job.Pid}`).then(
        () => true,
        () => false,
      )
    ) {
      if (Date.now() > deadline) throw new Error('the job runner did not stop');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await authFolders()).toEqual([]);
    const record = expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', queued.Name])).json;
    expect(record.Status).toBe('Failed');
    expect(record.Progress).toMatch(/stopped \(SIGTERM\)/);
    expect((await alerts(d, 'Active')).map((a) => a.BackupName)).toContain(queued.Name);
    await expect(fs.access(path.join(d.home, 'job.lock'))).rejects.toThrow();
  });
});
