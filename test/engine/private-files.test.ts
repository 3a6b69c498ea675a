import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../support/provider-fixtures.js';
import { expectOk, killWhen, makeDrill, runCli, spawnCli, whileRunning, type Drill } from '../support/cli.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';
import { makeSmbDrill, type SmbDrill } from '../support/smb-drill.js';

/**
 * No plaintext left behind: kill -9 a real backup of a SQLite database (its snapshot), a real
 * restore from an SMB share (decrypted staging, the auth file with the share password) and a real
 * SMB backup, each at the moment such a file exists. Afterwards TMPDIR holds nothing of ours; what
 * the process kept is in a 0700 folder under AZSBACKUP_HOME, which the next command removes.
 */

/** Every file under `dir` (none when it does not exist). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/** kill -9 of `child` as soon as a file named `name` exists under one of `dirs`. */
async function killOnceExists(child: ReturnType<typeof spawnCli>, name: string, dirs: string[]): Promise<void> {
  await killWhen(child, `a file '${name}'`, async () =>
    (await Promise.all(dirs.map(filesUnder))).flat().some((f) => path.basename(f) === name),
  );
}

/** The private folder after a kill: 0700, and holding the killed process's own 0700 folder. */
async function expectPrivate(home: string): Promise<void> {
  const root = path.join(home, 'private');
  expect((await fs.stat(root)).mode & 0o777).toBe(0o700);
  const left = await fs.readdir(root);
  expect(left).toHaveLength(1);
  expect((await fs.stat(path.join(root, left[0]!))).mode & 0o777).toBe(0o700);
}

async function expectSweptBy(home: string, tmp: string, run: () => Promise<unknown>): Promise<void> {
  await run();
  expect(await fs.readdir(path.join(home, 'private'))).toEqual([]);
  expect(await fs.readdir(tmp)).toEqual([]);
}

describe('kill -9 leaves no plaintext in TMPDIR', () => {
  let d: Drill;
  let tmp: string;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    tmp = path.join(d.root, 'tmp');
    await fs.mkdir(tmp);
    // Big enough that its snapshot is still being read when the kill comes.
    const db = new Database(path.join(d.root, 'big.sqlite'));
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)');
    const insert = db.prepare('INSERT INTO t (data) VALUES (?)');
    db.transaction(() => {
      for (let i = 0; i < 300; i++) insert.run(randomBytes(128 * 1024));
    })();
    db.close();
    await d.register('Db', ['-Provider', 'sqlite', '-DatabasePath', path.join(d.root, 'big.sqlite')]);
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('during a SQLite backup: the snapshot is in the private folder, never TMPDIR, and the next command sweeps it', async () => {
    const child = spawnCli(d.home, ['Start-InfrastructureBackup'], { env: { TMPDIR: tmp } });
    await killOnceExists(child, 'copy.sqlite', [tmp, path.join(d.home, 'private')]);
    expect(await filesUnder(tmp)).toEqual([]);
    await expectPrivate(d.home);
    // Any command of this home, even one that touches no data.
    await expectSweptBy(d.home, tmp, async () => expectOk(await d.cli(['Get-BackupConfiguration'], { env: { TMPDIR: tmp } })));
  }, 90_000);

  it("a running job's private folder is never swept", async () => {
    const child = spawnCli(d.home, ['Start-InfrastructureBackup'], { env: { TMPDIR: tmp } });
    let ended = false;
    void child.finally(() => {
      ended = true;
    });
    await whileRunning(child, 'a file in its private folder', async () => (await filesUnder(path.join(d.home, 'private'))).length > 0);
    const live = await fs.readdir(path.join(d.home, 'private'));
    expectOk(await d.cli(['Get-BackupConfiguration'], { env: { TMPDIR: tmp } }));
    if (!ended) expect(await fs.readdir(path.join(d.home, 'private'))).toEqual(live);
    const r = await child;
    expect(r.exitCode, r.stderr).toBe(0);
    // It removes its own folder when it ends.
    expect(await fs.readdir(path.join(d.home, 'private'))).toEqual([]);
  }, 90_000);
});

describe.skipIf(!sambaAvailable())('kill -9 during SMB work leaves neither the password nor data in TMPDIR', () => {
  let samba: SambaServer;
  let d: SmbDrill;
  let tmp: string;
  let backupName: string;

  beforeAll(async () => {
    samba = await startSamba();
    d = await makeSmbDrill(samba, { randomBytes: 24 << 20 });
    tmp = path.join(d.root, 'tmp');
    await fs.mkdir(tmp);
    backupName = (await d.backup()).Name as string;
  }, 300_000);
  afterAll(async () => {
    await d?.cleanup();
    await samba?.stop();
  });

  it('during a backup to the share: the auth file is in the private folder, never TMPDIR, and the next command sweeps it', async () => {
    const child = spawnCli(d.home, ['Start-InfrastructureBackup'], { env: { TMPDIR: tmp }, timeoutMs: 300_000 });
    await killOnceExists(child, 'auth', [tmp, path.join(d.home, 'private')]);
    expect(await filesUnder(tmp)).toEqual([]);
    await expectPrivate(d.home);
    await expectSweptBy(d.home, tmp, async () => expectOk(await d.cli(['Get-BackupConfiguration'], { env: { TMPDIR: tmp } })));
  }, 120_000);

  it('during a restore from the share: nothing in TMPDIR, the staging beside the folder is owner-only, and the next commands remove both', async () => {
    const beside = path.dirname(d.files);
    const staging = async () => (await fs.readdir(beside)).filter((n) => n.startsWith('.files.azs-staging-'));
    const child = spawnCli(d.home, ['Restore-AzsBackup', '-Name', backupName, '-EncryptionKey', '-'], {
      stdin: `${d.key}\n`,
      env: { TMPDIR: tmp },
      timeoutMs: 300_000,
    });
    // Killed once decrypted data is being written into the staging.
    await killWhen(child, 'data in the staging', async () => {
      const [s] = await staging();
      return s !== undefined && (await filesUnder(path.join(beside, s))).length > 0;
    });
    expect(await filesUnder(tmp)).toEqual([]);
    const [s] = await staging();
    expect((await fs.stat(path.join(beside, s!))).mode & 0o777).toBe(0o700);
    await expectPrivate(d.home);
    await expectSweptBy(d.home, tmp, async () => expectOk(await d.cli(['Get-BackupConfiguration'], { env: { TMPDIR: tmp } })));
    // The next restore of that folder removes the dead one's staging (its swap journal says whose it was).
    expectOk(
      await runCli(d.home, ['Restore-AzsBackup', '-Name', backupName, '-EncryptionKey', '-'], {
        stdin: `${d.key}\n`,
        env: { TMPDIR: tmp },
        timeoutMs: 300_000,
      }),
    );
    expect((await fs.readdir(beside)).filter((n) => n.startsWith('.files.'))).toEqual([]);
    expect(await fs.readdir(tmp)).toEqual([]);
  }, 300_000);
});
