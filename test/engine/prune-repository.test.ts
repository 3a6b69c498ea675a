import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, freshHome, makeDrill, runCli, sha256, shareFingerprint, spawnCli, type Drill, list } from '../support/cli.js';
import { redate } from '../support/redate.js';

/**
 * Prune as garbage collection of the deduplicating repository (issue 19 point 5), through the
 * command line: three backups share chunks; once the oldest expires, the packs only it needed go,
 * and only after the grace; every remaining backup still restores byte for byte; a BackupInfo.xml
 * that cannot be trusted keeps the whole repository; and a prune killed after any step on the
 * share leaves every committed backup restorable, the next prune finishing the work.
 */

const DAY = 86_400_000;

interface Fixture {
  d: Drill;
  /** Backup names, oldest first, and the bytes each one's role exported (its sha256). */
  names: string[];
  exported: Map<string, string>;
  /** Where the role's import writes what a restore brings back. */
  restored: string;
}

/** Every file under the share's repository, as share-relative paths. */
async function repositoryFiles(share: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(share, rel), { withFileTypes: true }).catch(() => [])) {
      const child = `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(child);
      else out.push(child);
    }
  };
  await walk('AzsRepository');
  return out.sort();
}

const packsOf = (files: string[]) => files.filter((f) => f.endsWith('.pack') && !f.includes('.pending-'));
const indexFilesOf = (files: string[]) => files.filter((f) => f.startsWith('AzsRepository/index/'));

/** The packs a backup's BackupInfo.xml names, as share-relative paths. */
async function packsNamedBy(d: Drill, name: string): Promise<string[]> {
  const xml = await fs.readFile(path.join(await d.backupFolder(name), 'BackupInfo.xml'), 'utf8');
  return [...xml.matchAll(/<Pack>([0-9a-f]{64})<\/Pack>/g)].map((m) => `AzsRepository/packs/${m[1]!.slice(0, 2)}/${m[1]}.pack`);
}

/** Sets every file of the repository `days` back: past the 24-hour grace when days > 1. */
async function age(share: string, days: number): Promise<void> {
  const then = new Date(Date.now() - days * DAY);
  for (const f of await repositoryFiles(share)) await fs.utimes(path.join(share, f), then, then);
}

/**
 * Three backups of one command role that exports the files of a folder: the first a file of its
 * own; the second and third a shared 4 MiB file and one of their own. The first is then made 30
 * days old (retention is 7), so the packs only it needs are garbage.
 */
async function threeBackups(): Promise<Fixture> {
  const d = await makeDrill({ roles: false, retentionDays: 7 });
  const data = path.join(d.root, 'data');
  const restored = path.join(d.root, 'restored.bin');
  await fs.mkdir(data);
  await d.registerCommand('Data', ['sh', '-c', `cat '${data}'/*`], ['sh', '-c', `cat > '${restored}'`]);
  const names: string[] = [];
  const exported = new Map<string, string>();
  const take = async () => {
    const files = (await fs.readdir(data)).sort();
    const bytes = Buffer.concat(await Promise.all(files.map((f) => fs.readFile(path.join(data, f)))));
    const b = await d.backup();
    expect(b.Status).toBe('Succeeded');
    names.push(b.Name);
    exported.set(b.Name, sha256(bytes));
  };
  await fs.writeFile(path.join(data, 'x0.bin'), randomBytes(3 * 1024 * 1024));
  await take();
  await fs.rm(path.join(data, 'x0.bin'));
  await fs.writeFile(path.join(data, 's.bin'), randomBytes(4 * 1024 * 1024));
  await fs.writeFile(path.join(data, 'x1.bin'), randomBytes(1024 * 1024));
  await take();
  await fs.rm(path.join(data, 'x1.bin'));
  await fs.writeFile(path.join(data, 'x2.bin'), randomBytes(1024 * 1024));
  await take();
  await redate(d, names[0]!, new Date(Date.now() - 30 * DAY));
  return { d, names, exported, restored };
}

/** Backups that list as committed now. */
async function listed(d: Drill): Promise<string[]> {
  return list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json)
    .filter((b) => b.Status !== 'Failed')
    .map((b) => b.Name);
}

/** The keyed check passes and a restore on a fresh machine brings back exactly what was exported. */
async function expectRestores(f: Fixture, name: string): Promise<void> {
  const { d } = f;
  const { args, stdin } = d.decryptArgs();
  const test = await d.cli(['Test-InfrastructureBackup', '-Name', name, ...args], { stdin });
  expect(test.code, test.stderr).toBe(0);
  expect(test.json.IsValid).toBe(true);
  await fs.rm(f.restored, { force: true });
  expectOk(
    await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', name, '-Path', d.share, ...args], { stdin }),
    'Restore-AzsBackup',
  );
  expect(sha256(await fs.readFile(f.restored)), `restore of ${name}`).toBe(f.exported.get(name));
}

describe('prune collects the repository', () => {
  let f: Fixture;
  let dead: string[];
  let dry: any;

  beforeAll(async () => {
    f = await threeBackups();
    const [old, ...kept] = f.names;
    const needed = new Set((await Promise.all(kept.map((n) => packsNamedBy(f.d, n)))).flat());
    dead = (await packsNamedBy(f.d, old!)).filter((p) => !needed.has(p)).sort();
  });
  afterAll(async () => f?.d.cleanup());

  it('the backups share packs, and the oldest has some of its own', async () => {
    const [, b1, b2] = await Promise.all(f.names.map((n) => packsNamedBy(f.d, n)));
    expect(b1!.filter((p) => b2!.includes(p)).length).toBeGreaterThan(0);
    expect(dead.length).toBeGreaterThan(0);
    expect(indexFilesOf(await repositoryFiles(f.d.share))).toHaveLength(3);
  });

  it('keeps an unreferenced pack younger than the grace', async () => {
    const before = await repositoryFiles(f.d.share);
    const r = expectOk(await f.d.cli(['Invoke-BackupPrune']));
    expect(r.json).toMatchObject({
      BackupsRemoved: 1,
      PacksRemoved: 0,
      RepositoryPathsToDelete: [],
      IndexFilesWritten: [],
      RepositoryWarning: null,
    });
    expect(await listed(f.d)).not.toContain(f.names[0]);
    expect(await repositoryFiles(f.d.share)).toEqual(before);
  });

  it('-DryRun past the grace lists the dead packs and every index file, with the bytes, and changes nothing', async () => {
    await age(f.d.share, 2);
    const files = await repositoryFiles(f.d.share);
    const before = shareFingerprint(f.d.share);
    dry = expectOk(await f.d.cli(['Invoke-BackupPrune', '-DryRun'])).json;
    expect(dry).toMatchObject({ DryRun: true, PacksRemoved: dead.length, IndexFilesWritten: [], RepositoryWarning: null });
    expect([...dry.RepositoryPathsToDelete].sort()).toEqual([...indexFilesOf(files), ...dead].sort());
    let bytes = 0;
    for (const p of dry.RepositoryPathsToDelete) bytes += (await fs.stat(path.join(f.d.share, p))).size;
    expect(dry.BytesFreed).toBe(bytes);
    expect(shareFingerprint(f.d.share)).toBe(before);
  });

  it('prune deletes exactly that, rewrites the index, and every remaining backup restores byte for byte', async () => {
    const before = await repositoryFiles(f.d.share);
    const r = expectOk(await f.d.cli(['Invoke-BackupPrune']));
    expect(r.json).toMatchObject({ DryRun: false, PacksRemoved: dead.length, BytesFreed: dry.BytesFreed, RepositoryWarning: null });
    expect(r.json.RepositoryPathsToDelete).toEqual(dry.RepositoryPathsToDelete);
    const after = await repositoryFiles(f.d.share);
    expect(packsOf(after)).toEqual(packsOf(before).filter((p) => !dead.includes(p)));
    expect(indexFilesOf(after)).toEqual(list(r.json.IndexFilesWritten).sort());
    expect(indexFilesOf(after)).toHaveLength(1);
    for (const name of f.names.slice(1)) await expectRestores(f, name);

    // Nothing more to collect; and the next backup dedups against the rewritten index.
    const again = expectOk(await f.d.cli(['Invoke-BackupPrune']));
    expect(again.json).toMatchObject({ PacksRemoved: 0, RepositoryPathsToDelete: [], IndexFilesWritten: [] });
    const next = await f.d.backup();
    f.exported.set(next.Name, f.exported.get(f.names[2]!)!);
    expect(next.Size).toBeLessThan(1024 * 1024);
    await expectRestores(f, next.Name);
  });
});

describe('a BackupInfo.xml that cannot be trusted', () => {
  let f: Fixture;

  beforeAll(async () => {
    f = await threeBackups();
    await age(f.d.share, 2);
  });
  afterAll(async () => f?.d.cleanup());

  it('keeps everything in the repository, and says why', async () => {
    const info = path.join(await f.d.backupFolder(f.names[1]!), 'BackupInfo.xml');
    const xml = await fs.readFile(info, 'utf8');
    await fs.writeFile(info, xml.replace(/<Pack>[0-9a-f]/, '<Pack>x'));
    const repository = shareFingerprint(path.join(f.d.share, 'AzsRepository'));

    const dry = expectOk(await f.d.cli(['Invoke-BackupPrune', '-DryRun']));
    expect(dry.json).toMatchObject({ PacksRemoved: 0, RepositoryPathsToDelete: [], BytesFreed: expect.any(Number) });
    const r = expectOk(await f.d.cli(['Invoke-BackupPrune']));
    expect(r.json).toMatchObject({ BackupsRemoved: 1, PacksRemoved: 0, RepositoryPathsToDelete: [], IndexFilesWritten: [] });
    expect(r.json.RepositoryWarning).toMatch(/Nothing in the repository was deleted.*cannot be read or fails its digest/);
    expect(r.stderr).toMatch(/Nothing in the repository was deleted/);
    expect(shareFingerprint(path.join(f.d.share, 'AzsRepository'))).toBe(repository);
    await expectRestores(f, f.names[2]!);

    // Once the file is put back, the garbage goes.
    await fs.writeFile(info, xml);
    const later = expectOk(await f.d.cli(['Invoke-BackupPrune']));
    expect(later.json.PacksRemoved).toBeGreaterThan(0);
    expect(later.json.RepositoryWarning).toBeNull();
    for (const name of f.names.slice(1)) await expectRestores(f, name);
  });
});

describe('kill -9 during prune', () => {
  let f: Fixture;
  let snapshot: string;
  let dead: string[];

  beforeAll(async () => {
    f = await threeBackups();
    await age(f.d.share, 2);
    const needed = new Set((await Promise.all(f.names.slice(1).map((n) => packsNamedBy(f.d, n)))).flat());
    dead = (await packsNamedBy(f.d, f.names[0]!)).filter((p) => !needed.has(p));
    expect(dead.length).toBeGreaterThan(0);
    snapshot = path.join(f.d.root, 'share-snapshot');
    await fs.cp(f.d.share, snapshot, { recursive: true, preserveTimestamps: true });
  });
  afterAll(async () => f?.d.cleanup());

  it('after every step on the share, every committed backup restores, and the next prune finishes', async () => {
    let finished: any;
    for (let step = 1; !finished; step++) {
      await fs.rm(f.d.share, { recursive: true, force: true });
      await fs.cp(snapshot, f.d.share, { recursive: true, preserveTimestamps: true });
      const ended = await spawnCli(f.d.home, ['Invoke-BackupPrune'], { env: { AZSBACKUP_TEST_PRUNE_KILL_AFTER: String(step) } });
      if (ended.signal !== 'SIGKILL') {
        expect(ended.exitCode, String(ended.stderr)).toBe(0);
        finished = { step, json: JSON.parse(String(ended.stdout)) };
        break;
      }
      for (const name of await listed(f.d)) await expectRestores(f, name);
      const rest = expectOk(await f.d.cli(['Invoke-BackupPrune']));
      expect(rest.json.RepositoryWarning, `after step ${step}`).toBeNull();
      // All garbage gone (index files killed before they were superseded may stay: they name live packs only).
      expect(
        packsOf(await repositoryFiles(f.d.share)).filter((p) => dead.includes(p)),
        `after step ${step}`,
      ).toEqual([]);
      const again = expectOk(await f.d.cli(['Invoke-BackupPrune']));
      expect(again.json, `after step ${step}`).toMatchObject({ PacksRemoved: 0, RepositoryPathsToDelete: [] });
      expect(await listed(f.d)).toEqual([f.names[2], f.names[1]]);
      for (const name of f.names.slice(1)) await expectRestores(f, name);
    }
    // Removing the backup (3 steps), one index file written, three superseded, at least one pack.
    expect(finished.step).toBeGreaterThan(8);
    expect(finished.json.PacksRemoved).toBeGreaterThan(0);
  }, 600_000);
});

describe('a machine without the repository keys', () => {
  let f: Fixture;

  beforeAll(async () => {
    f = await threeBackups();
    await age(f.d.share, 2);
  });
  afterAll(async () => f?.d.cleanup());

  it('cannot rewrite the index, so it deletes no pack an index file may list, and says so', async () => {
    // Another machine pointed at the same share, which never made a backup there.
    const home = await freshHome(f.d);
    expectOk(await runCli(home, ['Set-BackupShare', '-Path', f.d.share, '-EncryptionKey', '-'], { stdin: `${f.d.key}\n` }));
    const repository = shareFingerprint(path.join(f.d.share, 'AzsRepository'));
    const r = expectOk(await runCli(home, ['Invoke-BackupPrune']));
    expect(r.json).toMatchObject({ BackupsRemoved: 1, PacksRemoved: 0, RepositoryPathsToDelete: [], IndexFilesWritten: [] });
    expect(r.json.RepositoryWarning).toMatch(/unreferenced pack.* kept: this machine has no keys for the repository/);
    expect(shareFingerprint(path.join(f.d.share, 'AzsRepository'))).toBe(repository);

    // The machine that makes the backups collects them.
    const own = expectOk(await f.d.cli(['Invoke-BackupPrune']));
    expect(own.json.PacksRemoved).toBeGreaterThan(0);
    for (const name of f.names.slice(1)) await expectRestores(f, name);
  });
});
