import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint } from '../support/cli.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';
import { list, makeSmbDrill, type SmbDrill } from '../support/smb-drill.js';

/**
 * The operator's drill against a real Samba share through the real command line: configure the
 * share with an account and password, back up, check with and without the key, prune, and restore
 * on a machine that has only the share address, the credentials and the key.
 */

describe.skipIf(!sambaAvailable())('SMB drill through the command line', () => {
  let samba: SambaServer;
  let d: SmbDrill;
  let before: string;
  let first: any;

  beforeAll(async () => {
    samba = await startSamba();
    d = await makeSmbDrill(samba, { randomBytes: 3 << 20 });
    before = fingerprint(d.files);
    first = await d.backup();
  });
  afterAll(async () => {
    await d?.cleanup();
    await samba?.stop();
  });

  it('backs up every role to the share and the backup appears there under its final name', async () => {
    expect(first.Status).toBe('Succeeded');
    expect(first.EncryptionKeyId).toBe(d.keyId);
    expect(first.RoleStatus.map((r: any) => [r.RoleName, r.Status])).toEqual([['Files', 'Succeeded']]);
    const stamps = await fs.readdir(path.join(d.diskFolder, 'MASBackup'));
    expect(stamps).toHaveLength(1);
    const folder = path.join(d.diskFolder, 'MASBackup', stamps[0]!, first.Name);
    // The backup's folder holds its catalog; the data went into the location's repository, in packs.
    expect((await fs.readdir(folder)).sort()).toEqual(['BackupInfo.xml', 'Files.azscat']);
    const packs = (await fs.readdir(path.join(d.diskFolder, 'AzsRepository', 'packs'), { recursive: true }))
      .filter((p) => p.endsWith('.pack'))
      .map((p) => path.join(d.diskFolder, 'AzsRepository', 'packs', p));
    // Encrypted before it left: the random file's bytes are nowhere in what was stored.
    const stored = Buffer.concat(await Promise.all([path.join(folder, 'Files.azscat'), ...packs].map((f) => fs.readFile(f))));
    const secret = await fs.readFile(path.join(d.files, 'secret.bin'));
    expect(stored.includes(secret.subarray(0, 64))).toBe(false);
    expect(stored.length).toBeGreaterThan(3 << 20);
  });

  it('Test-BackupShare on the configured share: reachable, authenticated, writable, with its free space', async () => {
    const r = expectOk(await d.cli(['Test-BackupShare']), 'Test-BackupShare');
    expect(r.json).toMatchObject({ Reachable: true, Authenticated: true, Writable: true, HasEnoughCapacity: true });
    expect(r.json.AvailableCapacity).toBeGreaterThan(0);
    expect(r.json.Path).toBe(d.path);
    // The probe is gone again and nothing of ours but MASBackup and the repository is left in the folder.
    expect((await fs.readdir(d.diskFolder)).sort()).toEqual(['AzsRepository', 'MASBackup']);
  });

  it("Set-BackupShare reports the share's own free space as AvailableCapacity", async () => {
    const r = expectOk(await d.setShare(), 'Set-BackupShare');
    expect(r.json.Path).toBe(d.path);
    expect(r.json.UserName).toBe(samba.userName);
    expect(r.json.Password).toBeNull();
    // smbclient's figure for the share, which is the file system's; allow for other writers meanwhile.
    const { bavail, bsize } = await fs.statfs(samba.root);
    const disk = Number(bavail) * Number(bsize);
    expect(r.json.AvailableCapacity).toBeGreaterThan(disk * 0.9);
    expect(r.json.AvailableCapacity).toBeLessThan(disk * 1.1 + (64 << 20));
  });

  it('Test-InfrastructureBackup passes without the key (hashes) and with it (every chunk authenticated)', async () => {
    const keyless = expectOk(await d.cli(['Test-InfrastructureBackup', '-Name', first.Name]), 'keyless Test-InfrastructureBackup');
    expect(keyless.json.IsValid).toBe(true);
    expect(keyless.json.Mode).not.toBe('Authenticated');
    const keyed = expectOk(
      await d.cli(['Test-InfrastructureBackup', '-Name', first.Name, '-EncryptionKey', '-'], { stdin: `${d.key}\n` }),
      'keyed Test-InfrastructureBackup',
    );
    expect(keyed.json).toMatchObject({ Name: first.Name, Mode: 'Authenticated', IsValid: true });
    expect(keyed.json.ChunksAuthenticated).toBeGreaterThan(1);
  });

  it('a stored byte changed on the share fails the keyed check with exit 12', async () => {
    // A copy of the location in a throwaway folder on the same share, so the real one stays intact.
    const tamperedRoot = path.join(samba.root, `${d.folder}-tampered`);
    await fs.cp(d.diskFolder, tamperedRoot, { recursive: true });
    await fs.chmod(tamperedRoot, 0o777);
    try {
      const packs = path.join(tamperedRoot, 'AzsRepository', 'packs');
      const sizes = await Promise.all(
        (await fs.readdir(packs, { recursive: true }))
          .filter((p) => p.endsWith('.pack'))
          .map(async (p) => ({ file: path.join(packs, p), size: (await fs.stat(path.join(packs, p))).size })),
      );
      const file = sizes.sort((a, b) => b.size - a.size)[0]!.file;
      const bytes = await fs.readFile(file);
      bytes[bytes.length >> 1]! ^= 0x40;
      await fs.writeFile(file, bytes);
      const r = await d.cli(
        [
          'Test-InfrastructureBackup',
          '-Name',
          first.Name,
          '-Path',
          `${samba.smbUrl}/${d.folder}-tampered`,
          '-UserName',
          samba.userName,
          '-Password',
          '-',
          '-EncryptionKey',
          '-',
        ],
        { stdin: `${samba.password}\n${d.key}\n` },
      );
      expect(r.code).toBe(12);
      expect(r.json.IsValid).toBe(false);
      expect(r.errors.map((e) => e.ErrorId)).toContain('BackupVerificationFailed');
    } finally {
      await fs.rm(tamperedRoot, { recursive: true, force: true });
    }
  });

  it('Invoke-BackupPrune: -DryRun lists an expired backup and keeps it; a real run removes it and keeps the newest', async () => {
    const second = await d.backup();
    const masBackup = path.join(d.diskFolder, 'MASBackup');
    const stamps = (await fs.readdir(masBackup)).sort();
    expect(stamps).toHaveLength(2);
    // Make the first backup look three weeks old: its stamp folder is its creation time.
    const oldStamp = '20200102T030405Z';
    await fs.rename(path.join(masBackup, stamps[0]!), path.join(masBackup, oldStamp));

    const dry = expectOk(await d.cli(['Invoke-BackupPrune', '-DryRun']), 'Invoke-BackupPrune -DryRun').json;
    expect(dry).toMatchObject({ DryRun: true, BackupsRemoved: 1, BackupsKept: 1, LeftoversRemoved: 0 });
    expect(dry.PathsToDelete).toEqual([`MASBackup/${oldStamp}/${first.Name}`]);
    expect((await fs.readdir(masBackup)).sort()).toEqual([oldStamp, stamps[1]]);

    const real = expectOk(await d.cli(['Invoke-BackupPrune', '-Confirm:$false']), 'Invoke-BackupPrune').json;
    expect(real).toMatchObject({ DryRun: false, BackupsRemoved: 1, BackupsKept: 1 });
    expect(await fs.readdir(masBackup)).toEqual([stamps[1]]);
    const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(listed.map((b) => b.Name)).toEqual([second.Name]);
    // The first backup is gone; restore below uses the second.
    first = second;
  });

  it('listing costs the same few smbclient runs for 1 backup as for 12, and a backup a few more', async () => {
    // A wrapper first on PATH counts the runs: each one costs a connection and a logon.
    const bin = path.join(d.root, 'counting-bin');
    const log = path.join(d.root, 'smbclient-runs.log');
    await fs.mkdir(bin, { recursive: true });
    await fs.writeFile(path.join(bin, 'smbclient'), `#!/bin/sh\necho run >> '${log}'\nexec /usr/bin/smbclient "$@"\n`, { mode: 0o755 });
    const env = { PATH: `${bin}:${process.env.PATH}` };
    const runsOf = async (args: string[]) => {
      await fs.rm(log, { force: true });
      const r = expectOk(await d.cli(args, { env }), args[0]!);
      return { json: r.json, runs: (await fs.readFile(log, 'utf8')).trim().split('\n').length };
    };

    const masBackup = path.join(d.diskFolder, 'MASBackup');
    const [stamp] = await fs.readdir(masBackup);
    const one = await runsOf(['Get-InfrastructureBackup']);
    expect(list(one.json)).toHaveLength(1);
    // Eleven more backups on the share, copies under new names (their BackupInfo names the original,
    // so they list as damaged, which still means reading every one of them).
    const copies: string[] = [];
    for (let i = 0; i < 11; i++) {
      const copy = path.join(
        masBackup,
        `2021010${Math.floor(i / 5) + 1}T00000${i % 5}Z`,
        `00000000-0000-4000-8000-0000000000${String(i).padStart(2, '0')}`,
      );
      await fs.cp(path.join(masBackup, stamp!, first.Name), copy, { recursive: true });
      copies.push(path.dirname(copy));
    }
    try {
      const twelve = await runsOf(['Get-InfrastructureBackup']);
      expect(list(twelve.json)).toHaveLength(12);
      expect(list(twelve.json).filter((b) => b.Status === 'Failed')).toHaveLength(11);
      expect(twelve.runs).toBe(one.runs);
      expect(twelve.runs).toBeLessThanOrEqual(2);
      const dry = await runsOf(['Invoke-BackupPrune', '-DryRun']);
      expect(dry.json.BackupsRemoved).toBe(11);
      // The listing and the BackupInfo.xml files as above; then the repository: its tree, its
      // config and index files, and the share listed again to spare packs committed meanwhile.
      expect(dry.runs).toBeLessThanOrEqual(6);
    } finally {
      for (const c of new Set(copies)) await fs.rm(c, { recursive: true, force: true });
    }
    // A one-role backup: make the staging folder (which reports the free space); read the
    // repository (its config, its index folder, its index files); put a pack and rename it to its
    // hash, put the index file (and rename it); put the catalog; list the packs it needs; put
    // BackupInfo.xml; rename the folder into place; read config.xml again (a re-wrap on another
    // machine may have dropped its key's wrap meanwhile). A few more where some of these share a run.
    const backup = await runsOf(['Start-InfrastructureBackup']);
    expect(backup.json.Status).toBe('Succeeded');
    expect(backup.runs).toBeLessThanOrEqual(12);
  });

  it('Restore-AzsBackup on a fresh machine with -Path, -UserName, the password and the key: every byte back', async () => {
    await fs.rm(d.files, { recursive: true, force: true });
    const home = await d.freshHome();
    const r = expectOk(
      await d.cliIn(
        home,
        ['Restore-AzsBackup', '-Name', first.Name, '-Path', d.path, '-UserName', samba.userName, '-Password', '-', '-EncryptionKey', '-'],
        { stdin: `${samba.password}\n${d.key}\n`, timeoutMs: 300_000 },
      ),
      'Restore-AzsBackup',
    );
    expect(list(r.json).map((x) => [x.RoleName, x.Status])).toEqual([['Files', 'Succeeded']]);
    expect(r.errors).toEqual([]);
    expect(fingerprint(d.files)).toBe(before);
  });

  it('a fresh machine with the wrong key gets exit 12 and nothing is restored', async () => {
    const home = await d.freshHome();
    const other = expectOk(await d.cliIn(home, ['New-EncryptionKey'])).json.Key as string;
    await fs.writeFile(path.join(d.files, 'cloud.json'), 'changed after the backup');
    const now = fingerprint(d.files);
    const r = await d.cliIn(
      home,
      ['Restore-AzsBackup', '-Name', first.Name, '-Path', d.path, '-UserName', samba.userName, '-Password', '-', '-EncryptionKey', '-'],
      { stdin: `${samba.password}\n${other}\n` },
    );
    expect(r.code).toBe(12);
    expect(r.errors.length).toBeGreaterThan(0);
    expect(fingerprint(d.files)).toBe(now);
  });
});

describe.skipIf(!sambaAvailable())('SMB path and user name forms', () => {
  let samba: SambaServer;
  let d: SmbDrill;

  beforeAll(async () => {
    samba = await startSamba();
    d = await makeSmbDrill(samba, { configure: false });
  });
  afterAll(async () => {
    await d?.cleanup();
    await samba?.stop();
  });

  it('smb://127.0.0.1:<port>/<share>/<folder> is validated against the share and kept as given', async () => {
    const r = expectOk(await d.setShare(), 'Set-BackupShare');
    expect(r.json.Path).toBe(d.path);
    const shown = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
    expect(shown).toMatchObject({
      Path: d.path,
      UserName: samba.userName,
      Password: null,
      EncryptionMode: 'Key',
      EncryptionKeyId: d.keyId,
    });
  });

  it('a UNC path \\\\server\\share\\folder parses (port 445): accepted with -SkipValidation and shown back', async () => {
    const unc = '\\\\fs01.contoso.local\\backups\\azs\\east';
    const r = expectOk(
      await d.cli(['Set-BackupShare', '-Path', unc, '-UserName', 'CONTOSO\\svc-backup', '-Password', '-', '-SkipValidation'], {
        stdin: 'not-the-real-one\n',
      }),
      'Set-BackupShare UNC',
    );
    expect(r.json.Path).toBe(unc);
    expect(r.json.AvailableCapacity).toBeNull();
    const shown = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
    expect(shown).toMatchObject({ Path: unc, UserName: 'CONTOSO\\svc-backup', Password: null });
  });

  it('a malformed share path is a usage error that changes nothing', async () => {
    const before = expectOk(await d.cli(['Get-BackupConfiguration'])).json;
    for (const bad of ['\\\\server', 'smb://127.0.0.1:99999/backups', 'smb://user@127.0.0.1/backups']) {
      const r = await d.cli(['Set-BackupShare', '-Path', bad, '-EncryptionKey', '-', '-SkipValidation'], { stdin: `${d.key}\n` });
      expect(r.code, bad).toBe(2);
      expect(r.errors[0]?.ErrorId, bad).toMatch(/InvalidSharePath|ParameterArgumentValidationError/);
    }
    expect(expectOk(await d.cli(['Get-BackupConfiguration'])).json).toEqual(before);
  });

  it.each([
    ['DOMAIN\\user', () => `WORKGROUP\\${samba.userName}`],
    ['user@domain', () => `${samba.userName}@WORKGROUP`],
  ])('the account as %s reaches Samba: Set-BackupShare validates, a backup runs, Test-BackupShare passes', async (_form, user) => {
    const set = expectOk(await d.setShare([], samba.password, user()), `Set-BackupShare as ${user()}`);
    expect(set.json.UserName).toBe(user());
    expect(set.json.AvailableCapacity).toBeGreaterThan(0);
    const backup = await d.backup();
    expect(backup.Status).toBe('Succeeded');
    const test = expectOk(await d.cli(['Test-BackupShare']), 'Test-BackupShare').json;
    expect(test).toMatchObject({ Reachable: true, Authenticated: true, Writable: true });
    expect(test.AvailableCapacity).toBeGreaterThan(0);
  });

  it('-Credential with the password from the environment works the same', async () => {
    const r = expectOk(
      await d.cli(['Set-BackupShare', '-Path', d.path, '-Credential', samba.userName], { env: { AZSBACKUP_CREDENTIAL: samba.password } }),
      'Set-BackupShare -Credential',
    );
    expect(r.json.UserName).toBe(samba.userName);
    expect(r.json.AvailableCapacity).toBeGreaterThan(0);
    expect(expectOk(await d.cli(['Test-BackupShare'])).json.Authenticated).toBe(true);
  });
});
