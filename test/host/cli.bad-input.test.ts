import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, runCli, type CliResult, type Drill, warningRecordsIn, list } from '../support/cli.js';

/**
 * Bad input from the operator's and the share writer's side (issue 17, point 3): one hostile or
 * malformed BackupInfo.xml among good ones, files that never end (/dev/zero), FIFOs, folders where
 * files belong, files over the limits, ordinary mistakes. Each gets a typed error with a remedy, in
 * bounded time and memory, and nothing else is lost. Runs past a short timeout are SIGKILLed: the
 * code before this fix read /dev/zero until the machine ran out of memory and ignored SIGTERM.
 */

const bounded = { timeoutMs: 20_000, killSignal: 'SIGKILL' as const };

function expectTyped(r: CliResult, errorId: string, exitCode: number): void {
  expect(
    r.errors.map((e) => e.ErrorId),
    r.stderr,
  ).toContain(errorId);
  expect(r.errors.map((e) => e.ErrorId)).not.toContain('InternalError');
  const record = r.errors.find((e) => e.ErrorId === errorId)!;
  expect(record.RecommendedAction).toBeTruthy();
  expect(r.code).toBe(exitCode);
}

describe('a share with one bad BackupInfo.xml among good ones', () => {
  let d: Drill;
  let good: string;
  const bad = new Map<string, string>();

  beforeAll(async () => {
    d = await makeDrill();
    good = (await d.backup()).Name;
    const goodFolder = await d.backupFolder(good);
    const original = await fs.readFile(path.join(goodFolder, 'BackupInfo.xml'), 'utf8');
    // Each bad backup is a copy of the good one under a new name in its own older stamp folder,
    // with its BackupInfo.xml made bad one way (names inside match, so parsing gets that far).
    let second = 10;
    const plant = async (kind: string, make: (info: string, name: string) => Promise<void>) => {
      const name = randomUUID();
      const folder = path.join(d.share, 'MASBackup', `20260101T0000${second++}Z`, name);
      await fs.cp(goodFolder, folder, { recursive: true });
      const info = path.join(folder, 'BackupInfo.xml');
      await fs.rm(info);
      await make(info, name);
      bad.set(name, kind);
    };
    const edited = (edit: (xml: string) => string) => (info: string, name: string) =>
      fs.writeFile(info, edit(original.replaceAll(good, name)));
    await plant(
      'bad CreatedDateTime',
      edited((x) => x.replace(/<CreatedDateTime>[^<]*/, '<CreatedDateTime>yesterday-ish')),
    );
    await plant(
      'wrong type',
      edited((x) => x.replace(/<Status>[^<]*<\/Status>/, '<Status><Succeeded/></Status>').replace(/Size="\d+"/, 'Size="lots"')),
    );
    // Values the parser took but no output can carry (.NET's DateTime, TimeSpan, Int64): the whole
    // listing once failed on them as an internal bug, hiding every backup.
    await plant(
      'a CreatedDateTime after the year 9999',
      edited((x) => x.replace(/<CreatedDateTime>[^<]*/, '<CreatedDateTime>+010000-01-01T00:00:00.000Z')),
    );
    await plant(
      'a role that took longer than a TimeSpan holds',
      edited((x) => x.replace(/DurationMs="\d+"/, 'DurationMs="9007199254740991"')),
    );
    await plant(
      'stored sizes adding up past Int64',
      edited((x) => x.replace(/<File [^>]*\/>/g, (f) => f.replace(/Size="\d+"/, 'Size="9007199254740991"').repeat(400))),
    );
    // Text no writer of this service makes, which reached listings and PowerShell's objects whole:
    // a control character XML does not allow (a terminal acts on it), a role name no registration
    // allows, 1.9 MB long (quoted whole into the warning and the listing's Progress).
    await plant(
      'an escape character, which XML does not allow',
      edited((x) => x.replace('<Role Name="Files"', '<Role Name="Files\u001b]0;pwned\u0007"')),
    );
    await plant(
      'a role name of 1.9 MB',
      edited((x) => x.replace('<Role Name="Files"', `<Role Name="${'A'.repeat(1_900_000)}"`)),
    );
    await plant('garbage', (info) => fs.writeFile(info, Buffer.from([0x00, 0xff, 0x3c, 0x21, 0x2d, 0x2d, 0x7b, 0x0a])));
    await plant('a folder', (info) => fs.mkdir(info));
    await plant('a FIFO', async (info) => {
      execFileSync('mkfifo', [info]);
    });
    await plant('/dev/zero through a symlink', (info) => fs.symlink('/dev/zero', info));
  });
  afterAll(() => d?.cleanup());

  it('Get-InfrastructureBackup lists the good one, and each bad one as unreadable with a warning naming it', async () => {
    const r = await d.cli(['Get-InfrastructureBackup'], bounded);
    expect(r.errors, r.stderr).toEqual([]);
    expect(r.code).toBe(0);
    const listed = list(r.json);
    expect(listed.find((b) => b.Name === good)).toMatchObject({ Status: 'Succeeded', IsCloudRecoveryReady: true });
    const warned = warningRecordsIn(r.stderr);
    for (const [name, kind] of bad) {
      const entry = listed.find((b) => b.Name === name);
      expect(entry, kind).toMatchObject({ Status: 'Failed', IsCloudRecoveryReady: false });
      expect(entry.Progress, kind).toMatch(/^Unreadable/);
      expect(entry.Progress.length, kind).toBeLessThan(4096);
      expect(
        warned.some((w) => w.TargetObject === name && w.Message.includes(name)),
        `a warning for ${kind}`,
      ).toBe(true);
      expect(
        warned.filter((w) => w.TargetObject === name && w.Message.length >= 4096),
        `a bounded warning for ${kind}`,
      ).toEqual([]);
    }
    // One of them alone, by name: the same entry and warning.
    const [oneName] = [...bad].find(([, kind]) => kind === 'a FIFO')!;
    const one = await d.cli(['Get-InfrastructureBackup', '-Name', oneName], bounded);
    expect(one.code).toBe(0);
    expect(one.json).toMatchObject({
      Name: oneName,
      Status: 'Failed',
      Progress: expect.stringMatching(/Unreadable \(BackupInfoUnreadable\).*named pipe/),
    });
    expect(warningRecordsIn(one.stderr)).toHaveLength(1);
  });

  it('Test-InfrastructureBackup fails each bad one (exit 12, saying why) and passes the good one', async () => {
    expectOk(await d.cli(['Test-InfrastructureBackup', '-Name', good], bounded));
    for (const [name, kind] of bad) {
      const r = await d.cli(['Test-InfrastructureBackup', '-Name', name], bounded);
      expect(r.code, `${kind}: ${r.stderr}`).toBe(12);
      expect(r.json, kind).toMatchObject({ Name: name, IsValid: false });
      expect(r.errors.map((e) => e.ErrorId)).not.toContain('InternalError');
    }
  });

  it('Invoke-BackupPrune keeps what retention keeps and does not stumble; Update-BackupEncryption re-wraps the good one and names the bad', async () => {
    const prune = await d.cli(['Invoke-BackupPrune', '-DryRun'], bounded);
    expect(prune.code, prune.stderr).toBe(0);
    // The bad ones are old (2026-01-01), so retention would remove them: never the good newest one.
    expect(prune.json.PathsToDelete.join('\n')).not.toContain(good);
    for (const name of bad.keys()) expect(prune.json.PathsToDelete.join('\n')).toContain(name);

    const rewrap = await d.cli(['Update-BackupEncryption', '-EncryptionKey', '-'], { ...bounded, stdin: `${d.key}\n` });
    expect(rewrap.code, rewrap.stderr).toBe(3);
    expect(list(rewrap.json).map((b) => b.Name)).toContain(good);
    const failed = rewrap.errors.map((e) => String(e.TargetObject));
    for (const name of bad.keys()) expect(failed).toContain(name);
    expect(rewrap.errors.map((e) => e.ErrorId)).not.toContain('InternalError');
    // And the good one still restores-checks with the key.
    expectOk(await d.cli(['Test-InfrastructureBackup', '-Name', good, '-EncryptionKey', '-'], { stdin: `${d.key}\n` }));
  });
});

describe('a BackupInfo.xml over the limit', () => {
  let d: Drill;
  afterAll(() => d?.cleanup());

  it('is refused unread: the backup lists as too large, and checking it says so (exit 12)', async () => {
    d = await makeDrill();
    const name = (await d.backup()).Name;
    const info = path.join(await d.backupFolder(name), 'BackupInfo.xml');
    const xml = await fs.readFile(info, 'utf8');
    // 50 MB of well-formed roles before the seal: parsing it all is what must not happen.
    const role =
      '<Role Name="Pad" Status="Succeeded" Size="1" DurationMs="1"><Definition Provider="directory" ' +
      'RestoreOrder="1"><Path>/srv/pad</Path></Definition></Role>\n';
    await fs.writeFile(info, xml.replace('</Roles>', `${role.repeat(Math.ceil(50e6 / role.length))}</Roles>`));
    expect((await fs.stat(info)).size).toBeGreaterThan(50e6);

    const r = await d.cli(['Get-InfrastructureBackup'], bounded);
    expect(r.code, r.stderr).toBe(0);
    expect(list(r.json)[0]).toMatchObject({ Name: name, Status: 'Failed', Progress: expect.stringContaining('BackupInfoTooLarge') });
    expect(warningRecordsIn(r.stderr).map((w) => w.TargetObject)).toEqual([name]);

    const t = await d.cli(['Test-InfrastructureBackup', '-Name', name, '-EncryptionKey', '-'], { ...bounded, stdin: `${d.key}\n` });
    expect(t.code, t.stderr).toBe(12);
    expect(t.stderr).toContain('over the limit of 2097152 bytes');
    const restore = await d.cli(['Restore-AzsBackup', '-Name', name, '-EncryptionKey', '-', '-Confirm:$false'], {
      ...bounded,
      stdin: `${d.key}\n`,
    });
    expectTyped(restore, 'BackupInfoTooLarge', 12);
  });
});

describe('a FIFO on the share where a role catalog or a pack belongs', () => {
  let d: Drill;
  afterAll(() => d?.cleanup());

  // The local target opened role files and packs without O_NONBLOCK and without looking at what
  // they were: a FIFO planted in their place (anyone who may write to a mounted share can make one)
  // held the open until a writer came, so Test-InfrastructureBackup, Restore-AzsBackup and
  // Test-BackupRepository hung for good.
  it('is refused as not a regular file, in bounded time, and the destinations are untouched', async () => {
    d = await makeDrill();
    const name = (await d.backup()).Name;
    const catalog = path.join(await d.backupFolder(name), 'Files.azscat');
    await fs.rm(catalog);
    execFileSync('mkfifo', [catalog]);
    const { args, stdin } = d.decryptArgs();
    const t = await d.cli(['Test-InfrastructureBackup', '-Name', name, ...args], { ...bounded, stdin });
    expect(t.code, t.stderr).toBe(12);
    expect(t.json).toMatchObject({ Name: name, IsValid: false });
    expect(t.stderr).toContain('named pipe');
    const before = await fs.readFile(path.join(d.files, 'cloud.json'), 'utf8');
    await fs.writeFile(path.join(d.files, 'cloud.json'), 'changed since');
    const restore = await d.cli(['Restore-AzsBackup', '-Name', name, ...args, '-Confirm:$false'], { ...bounded, stdin });
    expectTyped(restore, 'NotARegularFile', 12);
    expect(await fs.readFile(path.join(d.files, 'cloud.json'), 'utf8')).toBe('changed since');
    expect(before).not.toBe('changed since');

    const packs = path.join(d.share, 'AzsRepository', 'packs');
    const [fan] = await fs.readdir(packs);
    const [pack] = await fs.readdir(path.join(packs, fan!));
    await fs.rm(path.join(packs, fan!, pack!));
    execFileSync('mkfifo', [path.join(packs, fan!, pack!)]);
    const repo = await d.cli(['Test-BackupRepository', ...args], { ...bounded, stdin });
    expect(repo.code, repo.stderr).toBe(12);
    expect(repo.errors.map((e) => e.ErrorId)).not.toContain('InternalError');
  });
});

describe('files the operator names, and the state files, are read bounded and typed', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'certificate', roles: false });
  });
  afterAll(() => d?.cleanup());

  it('a certificate path that is /dev/zero, a FIFO, a folder or too large is refused before it is read', async () => {
    const fifo = path.join(d.root, 'cert.fifo');
    execFileSync('mkfifo', [fifo]);
    const zeroLink = path.join(d.root, 'zero.cer');
    await fs.symlink('/dev/zero', zeroLink);
    const huge = path.join(d.root, 'huge.cer');
    await fs.writeFile(huge, Buffer.alloc(2 * 1024 * 1024, 0x30));
    const before = await fs.readFile(path.join(d.home, 'config.json'), 'utf8');
    for (const [cer, errorId] of [
      ['/dev/zero', 'NotARegularFile'],
      [zeroLink, 'NotARegularFile'],
      [fifo, 'NotARegularFile'],
      [d.root, 'NotARegularFile'],
      [huge, 'FileTooLarge'],
    ] as const) {
      const r = await d.cli(['Set-BackupShare', '-EncryptionCertPath', cer, '-SkipValidation'], bounded);
      expectTyped(r, errorId, 2);
    }
    // The .pfx of a restore the same way.
    const restore = await d.cli(
      ['Restore-AzsBackup', '-Name', randomUUID(), '-DecryptionCertPath', zeroLink, '-DecryptionCertPassword', '-', '-Confirm:$false'],
      { ...bounded, stdin: 'x\n' },
    );
    expectTyped(restore, 'NotARegularFile', 2);
    expect(await fs.readFile(path.join(d.home, 'config.json'), 'utf8')).toBe(before);
    // A regular file in RAM (/dev/shm, where some keep key material) is a file like any other.
    const inRam = path.join('/dev/shm', `azsbackup-test-${path.basename(d.root)}.cer`);
    await fs.copyFile(d.cer!, inRam);
    try {
      expectOk(await d.cli(['Set-BackupShare', '-EncryptionCertPath', inRam, '-SkipValidation'], bounded));
    } finally {
      await fs.rm(inRam, { force: true });
    }
  });

  it('a secret piped from /dev/zero (no line end, ever) is refused, not read without end', async () => {
    // 8 MB without a newline stands in for /dev/zero: the refusal must come before the input ends.
    const r = await d.cli(['Set-BackupShare', '-Password', '-', '-UserName', 'CONTOSO\\backup', '-SkipValidation'], {
      ...bounded,
      stdin: '\0'.repeat(8 * 1024 * 1024),
    });
    expectTyped(r, 'InputLineTooLong', 2);
  });

  it('config.json that is a folder, /dev/zero or not JSON is a typed error naming the file', async () => {
    const home = path.join(d.root, 'home-config');
    await fs.mkdir(path.join(home, 'config.json'), { recursive: true });
    expectTyped(await runCli(home, ['Get-BackupConfiguration'], bounded), 'NotARegularFile', 1);
    await fs.rm(path.join(home, 'config.json'), { recursive: true });
    await fs.symlink('/dev/zero', path.join(home, 'config.json'));
    expectTyped(await runCli(home, ['Get-InfrastructureRole'], bounded), 'NotARegularFile', 1);
    await fs.rm(path.join(home, 'config.json'));
    for (const text of ['{"share": ', '[1, 2, 3]', '"just a string"']) {
      await fs.writeFile(path.join(home, 'config.json'), text);
      expectTyped(await runCli(home, ['Get-BackupConfiguration'], bounded), 'ConfigurationCorrupt', 1);
    }
  });

  it('a damaged alert state file is set aside with a warning, and alerts start afresh', async () => {
    const home = path.join(d.root, 'home-alerts');
    await fs.mkdir(home);
    const file = path.join(home, 'alerts.json');
    await fs.writeFile(file, '[{"Id": "cut off in the middle');
    const r = await runCli(home, ['Get-BackupAlert'], bounded);
    expect(r.code, r.stderr).toBe(0);
    const [warning] = warningRecordsIn(r.stderr);
    expect(warning?.Message).toMatch(/alerts\.json was damaged.*set aside as .*alerts\.json\.corrupt-/);
    const aside = (await fs.readdir(home)).filter((f) => f.startsWith('alerts.json.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(await fs.readFile(path.join(home, aside[0]!), 'utf8')).toBe('[{"Id": "cut off in the middle');
    // Fresh state: the next read has nothing to say, and no second file is set aside.
    const again = await runCli(home, ['Get-BackupAlert'], bounded);
    expect(again.code).toBe(0);
    expect(warningRecordsIn(again.stderr)).toEqual([]);

    // /dev/zero in its place: set aside too, at once.
    await fs.symlink('/dev/zero', file);
    const zero = await runCli(home, ['Get-BackupAlert'], bounded);
    expect(zero.code, zero.stderr).toBe(0);
    expect(warningRecordsIn(zero.stderr)[0]?.Message).toMatch(/device/);
  });
});

describe('ordinary mistakes are typed errors with a remedy, never InternalError', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ roles: false });
  });
  afterAll(() => d?.cleanup());

  it('New-EncryptionKey -KeyPath in a folder that does not exist, or under /proc or /sys', async () => {
    expectTyped(await d.cli(['New-EncryptionKey', '-KeyPath', path.join(d.root, 'no', 'such', 'folder', 'backup.key')]), 'FileNotFound', 2);
    expectTyped(await d.cli(['New-EncryptionKey', '-KeyPath', '/proc/backup.key']), 'PathIsKernelInterface', 2);
    expectTyped(await d.cli(['New-EncryptionKey', '-KeyPath', '/sys/kernel/backup.key']), 'PathIsKernelInterface', 2);
    expectTyped(
      await d.cli(
        [
          'New-EncryptionKey',
          '-Certificate',
          '-CertificatePath',
          '/proc/self/b.cer',
          '-PfxPath',
          path.join(d.root, 'b.pfx'),
          '-PfxPassword',
          '-',
        ],
        { stdin: 'pw\n' },
      ),
      'PathIsKernelInterface',
      2,
    );
    expect(await fs.readdir(d.root)).not.toContain('b.pfx');
  });

  it('a role or certificate under /proc or /sys', async () => {
    expectTyped(
      await d.cli(['Register-InfrastructureRole', '-Name', 'Kernel', '-Provider', 'directory', '-Path', '/proc/self']),
      'ProviderPathIsKernelInterface',
      2,
    );
    expectTyped(
      await d.cli(['Register-InfrastructureRole', '-Name', 'Kernel', '-Provider', 'sqlite', '-DatabasePath', '/sys/kernel/x.db']),
      'ProviderPathIsKernelInterface',
      2,
    );
    expectTyped(
      await d.cli(['Set-BackupShare', '-EncryptionCertPath', '/proc/self/status', '-SkipValidation'], bounded),
      'NotARegularFile',
      2,
    );
  });

  it('Set-BackupShare -Password - without -UserName is a usage error, and changes nothing', async () => {
    const before = await fs.readFile(path.join(d.home, 'config.json'), 'utf8');
    const r = await d.cli(['Set-BackupShare', '-Path', d.share, '-Password', '-', '-SkipValidation'], { stdin: 'secret\n' });
    expectTyped(r, 'PasswordWithoutUserName', 2);
    expect(await fs.readFile(path.join(d.home, 'config.json'), 'utf8')).toBe(before);
    // From the environment alone it is an unused variable, not a mistake on this command line.
    expectOk(await d.cli(['Get-InfrastructureBackup'], { env: { AZSBACKUP_PASSWORD: 'stale' } }));
  });

  it('AZSBACKUP_HOME that is a file, or that cannot be written', async () => {
    const file = path.join(d.root, 'home-is-a-file');
    await fs.writeFile(file, 'not a folder');
    expectTyped(await runCli(file, ['Get-BackupConfiguration']), 'HomeNotAFolder', 2);
    expectTyped(
      await runCli(file, ['Register-InfrastructureRole', '-Name', 'A', '-Provider', 'directory', '-Path', d.files]),
      'HomeNotAFolder',
      2,
    );
    expect(await fs.readFile(file, 'utf8')).toBe('not a folder');

    // Read-only: a read-only tmpfs (as root, permission bits would not stop the test itself).
    const ro = path.join(d.root, 'read-only');
    await fs.mkdir(ro);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', ro], { stdio: 'ignore' });
    } catch {
      console.warn('skipped the read-only AZSBACKUP_HOME case: mounting a tmpfs is not possible here (needs root)');
      return;
    }
    try {
      const r = await runCli(path.join(ro, 'home'), [
        'Register-InfrastructureRole',
        '-Name',
        'A',
        '-Provider',
        'directory',
        '-Path',
        d.files,
      ]);
      expectTyped(r, 'HomeNotWritable', 1);
      expect(r.errors[0]!.Message).toContain(path.join(ro, 'home'));
    } finally {
      execFileSync('umount', [ro]);
    }
  });
});
