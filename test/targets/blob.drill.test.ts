import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, parseErrors, runCli, spawnCli, type CliOptions } from '../support/cli.js';
import { startAzurite, type AzuriteServer } from '../support/azurite.js';
import { list, writeRandom } from '../support/smb-drill.js';

/**
 * The operator's drill against a blob container on a real Azurite server, through the real command
 * line: configure the container with the account key (or a SAS) as a secret, back up, list,
 * check, prune, and restore on a machine that has only the container URL, the key and the
 * encryption key; and the failures an operator meets: a wrong key, a missing container, a SAS
 * without write permission, a server that goes away mid-backup, blobs under a lease.
 */

const DAY = 86_400_000;
const stampOf = (t: Date) =>
  t
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

describe('blob container drill through the command line', () => {
  let azurite: AzuriteServer;
  let root: string;
  let home: string;
  let files: string;
  let key: string;
  let keyId: string;
  const container = 'backups';
  const prefix = 'region-1/hub';
  let url: string;
  let first: any;
  let before: string;
  const cli = (args: string[], o?: CliOptions) => runCli(home, args, o);
  /** Every blob name under the prefix, relative to it. */
  const blobs = async (c = container) => {
    const out: string[] = [];
    for await (const b of azurite.container(c).listBlobsFlat({ prefix: `${prefix}/` })) out.push(b.name.slice(prefix.length + 1));
    return out.sort();
  };

  beforeAll(async () => {
    azurite = await startAzurite();
    await azurite.createContainer(container);
    url = azurite.url(container, prefix);
    root = await fs.mkdtemp(path.join(tmpdir(), 'azs-blob-drill-'));
    home = path.join(root, 'home');
    files = path.join(root, 'files');
    await fs.mkdir(path.join(files, 'conf.d'), { recursive: true });
    await fs.writeFile(path.join(files, 'cloud.json'), JSON.stringify({ region: 'blob', scaleUnits: 3 }));
    await fs.writeFile(path.join(files, 'conf.d', 'network.ini'), '[network]\nexternal=10.1.0.0/24\n', { mode: 0o640 });
    // Incompressible and larger than a block (8 MiB): the role file is several staged blocks.
    await writeRandom(path.join(files, 'big.bin'), 20 << 20);
    before = fingerprint(files);
    const made = expectOk(await cli(['New-EncryptionKey']), 'New-EncryptionKey').json;
    key = made.Key;
    keyId = made.KeyId;
    expectOk(
      await cli(['Set-BackupShare', '-Path', url, '-StorageAccountKey', '-', '-EncryptionKey', '-', '-BackupRetentionPeriodInDays', '2'], {
        stdin: `${azurite.accountKey}\n${key}\n`,
      }),
      'Set-BackupShare',
    );
    expectOk(
      await cli(['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', files]),
      'Register-InfrastructureRole',
    );
    first = expectOk(await cli(['Start-InfrastructureBackup'], { timeoutMs: 300_000 }), 'Start-InfrastructureBackup').json;
  });
  afterAll(async () => {
    await azurite?.stop();
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('backs up into the container under the prefix: the MASBackup layout, encrypted before it left', async () => {
    expect(first).toMatchObject({ Status: 'Succeeded', EncryptionKeyId: keyId });
    const stored = (await blobs()).filter((b) => b.includes(first.Name));
    expect(stored.map((b) => b.replace(/\d{8}T\d{6}Z/, '<stamp>'))).toEqual([
      `MASBackup/<stamp>/${first.Name}`, // the folder's marker
      `MASBackup/<stamp>/${first.Name}/BackupInfo.xml`,
      `MASBackup/<stamp>/${first.Name}/Files.azscat`,
    ]);
    // The data went into the location's repository, in packs: encrypted, nowhere in the clear.
    const packs = (await blobs()).filter((b) => b.startsWith('AzsRepository/packs/') && b.endsWith('.pack'));
    const secret = await fs.readFile(path.join(files, 'big.bin'));
    let packed = 0;
    for (const pack of packs) {
      const bytes = await azurite.container(container).getBlobClient(`${prefix}/${pack}`).downloadToBuffer();
      packed += bytes.length;
      expect(bytes.includes(secret.subarray(0, 64))).toBe(false);
    }
    expect(packed).toBeGreaterThan(20 << 20);
  });

  it('lists the backup, and checks it without the key (hashes) and with it (every chunk authenticated)', async () => {
    const listed = list(expectOk(await cli(['Get-InfrastructureBackup'])).json);
    expect(listed.map((b) => [b.Name, b.Status])).toEqual([[first.Name, 'Succeeded']]);
    const keyless = expectOk(await cli(['Test-InfrastructureBackup', '-Name', first.Name]), 'keyless check').json;
    expect(keyless.IsValid).toBe(true);
    const keyed = expectOk(
      await cli(['Test-InfrastructureBackup', '-Name', first.Name, '-EncryptionKey', '-'], { stdin: `${key}\n` }),
      'keyed check',
    ).json;
    expect(keyed).toMatchObject({ Mode: 'Authenticated', IsValid: true });
    expect(keyed.ChunksAuthenticated).toBeGreaterThan(20);
  });

  it('restores on a fresh machine given only the URL, the account key (environment) and the encryption key', async () => {
    await fs.rm(files, { recursive: true, force: true });
    const fresh = await fs.mkdtemp(path.join(root, 'fresh-home-'));
    const found = list(
      expectOk(
        await runCli(fresh, ['Get-InfrastructureBackup', '-Path', url], { env: { AZSBACKUP_STORAGEACCOUNTKEY: azurite.accountKey } }),
      ).json,
    );
    expect(found.map((b) => b.Name)).toEqual([first.Name]);
    const restored = expectOk(
      await runCli(fresh, ['Restore-AzsBackup', '-Name', first.Name, '-Path', url, '-EncryptionKey', '-'], {
        stdin: `${key}\n`,
        env: { AZSBACKUP_STORAGEACCOUNTKEY: azurite.accountKey },
        timeoutMs: 300_000,
      }),
      'Restore-AzsBackup',
    );
    expect(list(restored.json).map((r) => [r.RoleName, r.Status])).toEqual([['Files', 'Succeeded']]);
    expect(fingerprint(files)).toBe(before);
  });

  it('keeps the account key out of argv and out of the configuration in clear, and never shows it', async () => {
    const refused = await cli(['Set-BackupShare', '-Path', url, '-StorageAccountKey', azurite.accountKey]);
    expect(refused.code).toBe(2);
    expect(refused.errors[0]).toMatchObject({ ErrorId: 'SecretOnCommandLine', TargetObject: 'StorageAccountKey' });
    expect(refused.stderr).not.toContain(azurite.accountKey);
    const sasInPath = await cli(['Test-BackupShare', '-Path', `${url}?sv=2024&sig=${encodeURIComponent('s3cr3t/sig=')}`]);
    expect(sasInPath.code).toBe(2);
    expect(sasInPath.stderr).not.toContain('s3cr3t');
    const config = await fs.readFile(path.join(home, 'config.json'), 'utf8');
    expect(config).toContain(url);
    expect(config).not.toContain(azurite.accountKey);
    expect(config).not.toContain(azurite.accountKey.slice(0, 20));
    const shown = expectOk(await cli(['Get-BackupConfiguration'])).json;
    expect(shown).toMatchObject({ Path: url, Password: null });
    expect(JSON.stringify(shown)).not.toContain(azurite.accountKey.slice(0, 20));
  });

  it('Test-BackupShare passes every step and says plainly that the free space is not known', async () => {
    const r = expectOk(await cli(['Test-BackupShare']), 'Test-BackupShare').json;
    expect(r).toMatchObject({ Reachable: true, Authenticated: true, Writable: true, AvailableCapacity: null, HasEnoughCapacity: true });
    expect(r.Steps.map((s: any) => [s.Name, s.Succeeded])).toEqual([
      ['Resolve', true],
      ['Connect', true],
      ['Authenticate', true],
      ['Open', true],
      ['Write', true],
      ['Read', true],
      ['Delete', true],
      ['Capacity', true],
    ]);
    expect(r.Steps.at(-1).Message).toMatch(/not known/);
    // The probe is gone again.
    expect((await blobs()).filter((b) => !b.startsWith('MASBackup') && !b.startsWith('AzsRepository/'))).toEqual([]);
  });

  it('a wrong account key: Test-BackupShare fails at Authenticate with exit 13, a backup raises ShareAuthentication', async () => {
    const wrong = randomBytes(64).toString('base64');
    const r = await cli(['Test-BackupShare', '-Path', url], { env: { AZSBACKUP_STORAGEACCOUNTKEY: wrong } });
    expect(r.code).toBe(13);
    expect(r.json.Steps.at(-1)).toMatchObject({ Name: 'Authenticate', Succeeded: false });
    expect(r.errors[0]).toMatchObject({ ErrorId: 'ShareAccessDenied', Category: 'AuthenticationError' });
    expect(r.errors[0]!.RecommendedAction).toMatch(/storage account key or SAS token/);

    const other = path.join(root, 'wrong-key-home');
    await runCli(other, ['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', root]);
    expectOk(
      await runCli(other, ['Set-BackupShare', '-Path', url, '-StorageAccountKey', '-', '-EncryptionKey', '-', '-SkipValidation'], {
        stdin: `${wrong}\n${key}\n`,
      }),
    );
    const backup = await runCli(other, ['Start-InfrastructureBackup']);
    expect(backup.code).toBe(13);
    const alerts = list(expectOk(await runCli(other, ['Get-BackupAlert'])).json);
    expect(alerts.map((a) => [a.AlertType, a.Status])).toEqual([['ShareAuthentication', 'Active']]);
    expect(alerts[0].Remediation.join(' ')).toMatch(/-StorageAccountKey or -SasToken/);
  });

  it('a missing container: exit 10 at Open (the key was not refused), nothing created', async () => {
    const missing = azurite.url('no-such-container', prefix);
    const r = await cli(['Test-BackupShare', '-Path', missing], { env: { AZSBACKUP_STORAGEACCOUNTKEY: azurite.accountKey } });
    expect(r.code).toBe(10);
    expect(r.json.Steps.at(-1)).toMatchObject({ Name: 'Open', Succeeded: false });
    expect(r.errors[0]).toMatchObject({ ErrorId: 'SharePathNotFound' });
    expect(await azurite.container('no-such-container').exists()).toBe(false);
  });

  it('nothing listening at the endpoint: exit 10 at Connect', async () => {
    const r = await cli(['Test-BackupShare', '-Path', `http://127.0.0.1:1/${azurite.accountName}/${container}`], {
      env: { AZSBACKUP_STORAGEACCOUNTKEY: azurite.accountKey },
    });
    expect(r.code).toBe(10);
    expect(r.json.Steps.at(-1)).toMatchObject({ Name: 'Connect', Succeeded: false });
  });

  it('a SAS that may only read and list fails at Write with exit 13 and leaves nothing; a full SAS backs up and lists', async () => {
    const readOnly = azurite.sas(container, 'rl');
    const r = await cli(['Test-BackupShare', '-Path', url, '-SasToken', '-'], { stdin: `?${readOnly}\n` });
    expect(r.code).toBe(13);
    expect(r.json).toMatchObject({ Reachable: true, Authenticated: true, Writable: false });
    expect(r.json.Steps.at(-1)).toMatchObject({ Name: 'Write', Succeeded: false });
    expect(r.errors[0]).toMatchObject({ Category: 'PermissionDenied' });
    expect(r.stderr).not.toContain(readOnly.slice(-20));
    expect((await blobs()).filter((b) => !b.startsWith('MASBackup') && !b.startsWith('AzsRepository/'))).toEqual([]);

    const sasHome = path.join(root, 'sas-home');
    const full = azurite.sas(container, 'racwdl');
    expectOk(
      await runCli(sasHome, ['Set-BackupShare', '-Path', url, '-SasToken', '-', '-EncryptionKey', '-'], { stdin: `${full}\n${key}\n` }),
      'Set-BackupShare -SasToken',
    );
    expect(await fs.readFile(path.join(sasHome, 'config.json'), 'utf8')).not.toContain(full.slice(-20));
    expectOk(
      await runCli(sasHome, [
        'Register-InfrastructureRole',
        '-Name',
        'Conf',
        '-Provider',
        'directory',
        '-Path',
        path.join(files, 'conf.d'),
      ]),
    );
    const made = expectOk(await runCli(sasHome, ['Start-InfrastructureBackup']), 'backup with a SAS').json;
    expect(made.Status).toBe('Succeeded');
    const listed = list(expectOk(await runCli(sasHome, ['Get-InfrastructureBackup'])).json);
    expect(listed.map((b) => b.Name)).toEqual(expect.arrayContaining([first.Name, made.Name]));
    expectOk(await runCli(sasHome, ['Remove-InfrastructureBackup', '-Name', made.Name, '-Confirm:$false']), 'Remove-InfrastructureBackup');
    expect((await blobs()).some((b) => b.includes(made.Name))).toBe(false);
  });

  it('a server killed mid-backup: exit 10, ShareConnectivity raised, nothing listed; prune removes what it left', async () => {
    const slowHome = path.join(root, 'slow-home');
    expectOk(
      await runCli(slowHome, ['Set-BackupShare', '-Path', url, '-StorageAccountKey', '-', '-EncryptionKey', '-'], {
        stdin: `${azurite.accountKey}\n${key}\n`,
      }),
    );
    // 12 MiB out at once (a staged block and more), then the program takes its time.
    expectOk(
      await runCli(slowHome, [
        'Register-InfrastructureRole',
        '-Name',
        'Slow',
        '-Provider',
        'command',
        '-ExportCommand:sh',
        '-ExportCommand:-c',
        '-ExportCommand:head -c 12582912 /dev/urandom; sleep 6',
        '-ImportCommand:cat',
      ]),
    );
    const listedBefore = list(expectOk(await runCli(slowHome, ['Get-InfrastructureBackup'])).json).map((b) => b.Name);
    const running = spawnCli(slowHome, ['Start-InfrastructureBackup']);
    // Wait for the backup's folder to appear in the container, then take the server away.
    const deadline = Date.now() + 30_000;
    while (
      !(await blobs()).some((b) => /^MASBackup\/\d{8}T\d{6}Z\/[0-9a-f-]{36}$/.test(b) && !b.includes(first.Name)) &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1000));
    await azurite.kill();
    const done = await running;
    expect(done.exitCode).toBe(10);
    expect(parseErrors(done.stderr)[0]).toMatchObject({ ErrorId: 'ShareUnreachable', ExitCode: 10 });
    await azurite.restart();
    const alerts = list(expectOk(await runCli(slowHome, ['Get-BackupAlert'])).json);
    expect(alerts.map((a) => [a.AlertType, a.Status])).toContainEqual(['ShareConnectivity', 'Active']);
    // The job is known to this machine, as Failed; the container lists no backup for it.
    const after = list(expectOk(await runCli(slowHome, ['Get-InfrastructureBackup'])).json);
    expect(after.filter((b) => !listedBefore.includes(b.Name)).map((b) => b.Status)).toEqual(['Failed']);
    expect(
      list(expectOk(await cli(['Get-InfrastructureBackup'])).json)
        .map((b) => b.Name)
        .sort(),
    ).toEqual([...listedBefore].sort());
    const left = (await blobs()).filter((b) => b.startsWith('MASBackup/') && !listedBefore.some((n) => b.includes(n)));
    expect(left.length).toBeGreaterThan(0);
    const pruned = expectOk(await runCli(slowHome, ['Invoke-BackupPrune']), 'Invoke-BackupPrune').json;
    expect(pruned.LeftoversRemoved).toBeGreaterThan(0);
    expect((await blobs()).filter((b) => b.startsWith('MASBackup/') && !listedBefore.some((n) => b.includes(n)))).toEqual([]);
  });

  it('prune reports blobs the storage may not delete yet (a lease) instead of failing, and removes them once released', async () => {
    const pruneHome = path.join(root, 'prune-home');
    expectOk(
      await runCli(
        pruneHome,
        ['Set-BackupShare', '-Path', url, '-StorageAccountKey', '-', '-EncryptionKey', '-', '-BackupRetentionPeriodInDays', '2'],
        { stdin: `${azurite.accountKey}\n${key}\n` },
      ),
    );
    expectOk(
      await runCli(pruneHome, [
        'Register-InfrastructureRole',
        '-Name',
        'Files',
        '-Provider',
        'directory',
        '-Path',
        path.join(files, 'conf.d'),
      ]),
    );
    const olds: string[] = [];
    for (const daysAgo of [9, 8]) {
      const b = expectOk(await runCli(pruneHome, ['Start-InfrastructureBackup']), 'backup').json;
      olds.push(b.Name);
      await age(b.Name, daysAgo);
    }
    expectOk(await runCli(pruneHome, ['Start-InfrastructureBackup']), 'newest backup');
    // The older backup's BackupInfo.xml held by an infinite lease, as a hold the storage enforces.
    const held = (await blobs()).find((b) => b.endsWith(`${olds[0]}/BackupInfo.xml`))!;
    const lease = azurite.container(container).getBlobClient(`${prefix}/${held}`).getBlobLeaseClient();
    await lease.acquireLease(-1);

    const pruned = expectOk(await runCli(pruneHome, ['Invoke-BackupPrune']), 'Invoke-BackupPrune').json;
    expect(pruned.PathsRetained).toEqual([held]);
    expect(pruned.BackupsRemoved).toBe(1);
    const names = list(expectOk(await runCli(pruneHome, ['Get-InfrastructureBackup'])).json).map((b) => b.Name);
    expect(names).toContain(olds[0]);
    expect(names).not.toContain(olds[1]);

    await lease.breakLease(0);
    const again = expectOk(await runCli(pruneHome, ['Invoke-BackupPrune']), 'second Invoke-BackupPrune').json;
    expect(again).toMatchObject({ BackupsRemoved: 1, PathsRetained: [] });
    expect((await blobs()).some((b) => b.includes(olds[0]!))).toBe(false);
  });

  it('the scheduler takes a due backup into the container, and Update-BackupEncryption re-wraps it there for a rotated key', async () => {
    const rotHome = path.join(root, 'rotate-home');
    expectOk(
      await runCli(
        rotHome,
        [
          'Set-BackupShare',
          '-Path',
          url,
          '-StorageAccountKey',
          '-',
          '-EncryptionKey',
          '-',
          '-IsBackupSchedulerEnabled',
          '$true',
          '-BackupFrequencyInHours',
          '4',
        ],
        { stdin: `${azurite.accountKey}\n${key}\n` },
      ),
    );
    expectOk(
      await runCli(rotHome, [
        'Register-InfrastructureRole',
        '-Name',
        'Conf',
        '-Provider',
        'directory',
        '-Path',
        path.join(files, 'conf.d'),
      ]),
    );
    const due = expectOk(await runCli(rotHome, ['Invoke-BackupScheduler']), 'Invoke-BackupScheduler').json;
    expect(due).toMatchObject({ Status: 'Succeeded', EncryptionKeyId: keyId });
    const info = async () => {
      const name = (await blobs()).find((b) => b.endsWith(`${due.Name}/BackupInfo.xml`))!;
      return azurite.container(container).getBlobClient(`${prefix}/${name}`).downloadToBuffer();
    };
    const role = (await blobs()).find((b) => b.endsWith(`${due.Name}/Conf.azscat`))!;
    const roleBefore = await azurite.container(container).getBlobClient(`${prefix}/${role}`).downloadToBuffer();
    const infoBefore = await info();

    const rotated = expectOk(await runCli(rotHome, ['New-EncryptionKey'])).json;
    expectOk(await runCli(rotHome, ['Set-BackupShare', '-EncryptionKey', '-'], { stdin: `${rotated.Key}\n` }), 'Set-BackupShare (new key)');
    const rewrapped = expectOk(
      await runCli(rotHome, ['Update-BackupEncryption', '-Name', due.Name, '-EncryptionKey', '-', '-Confirm:$false'], {
        stdin: `${key}\n`,
      }),
      'Update-BackupEncryption',
    ).json;
    expect(list(rewrapped).map((b) => [b.Name, b.EncryptionKeyId])).toEqual([[due.Name, rotated.KeyId]]);
    // Only BackupInfo.xml changed, replaced whole; the role's catalog is byte for byte what it was.
    expect((await info()).equals(infoBefore)).toBe(false);
    expect((await azurite.container(container).getBlobClient(`${prefix}/${role}`).downloadToBuffer()).equals(roleBefore)).toBe(true);
    expect((await blobs()).filter((b) => b.includes(due.Name)).map((b) => b.slice(b.indexOf(due.Name)))).toEqual([
      due.Name,
      `${due.Name}/BackupInfo.xml`,
      `${due.Name}/Conf.azscat`,
    ]);
    const keyed = expectOk(
      await runCli(rotHome, ['Test-InfrastructureBackup', '-Name', due.Name, '-EncryptionKey', '-'], { stdin: `${rotated.Key}\n` }),
    ).json;
    expect(keyed).toMatchObject({ Mode: 'Authenticated', IsValid: true });
  });

  /** Moves a backup's blobs into a stamp `daysAgo` days back, the time listing and retention go by. */
  async function age(name: string, daysAgo: number): Promise<void> {
    const c = azurite.container(container);
    const stamp = stampOf(new Date(Date.now() - daysAgo * DAY));
    for (const b of (await blobs()).filter((x) => x.includes(name))) {
      const from = c.getBlobClient(`${prefix}/${b}`);
      const to = c.getBlobClient(`${prefix}/${b.replace(/\d{8}T\d{6}Z/, stamp)}`);
      await (await to.beginCopyFromURL(from.url)).pollUntilDone();
      await from.delete();
    }
  }
});
