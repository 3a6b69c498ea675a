import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSymmetricKey, symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import { BlobSealer, BLOB_OVERHEAD } from '../../src/repository/blob.js';
import { deriveRepositoryKeys, newPackKey, type RepositoryKeys } from '../../src/repository/keys.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { packHeader, packTail } from '../../src/repository/pack-format.js';
import { readPackContents } from '../../src/repository/pack-reader.js';
import { readRepositoryConfig, unwrapMaster } from '../../src/repository/repository-config.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { dbRows, expectOk, fingerprint, freshHome, makeDrill, runCli, sha256, type CliResult, type Drill } from '../support/cli.js';

/**
 * Verification of backups in the deduplicating repository (issue 19, point 6): the keyless check
 * reads every pack a backup names against its name, the keyed one authenticates every chunk its
 * catalogs list, Test-BackupRepository checks the whole location once, and a lost index is rebuilt.
 * Each damage is made on a copy of the share, so the cases do not disturb one another.
 */

const layout = new RepositoryLayout();

/** The packs a backup's BackupInfo.xml names. */
async function packsOf(folder: string): Promise<string[]> {
  const xml = await fs.readFile(path.join(folder, 'BackupInfo.xml'), 'utf8');
  return [...xml.matchAll(/<Pack>([0-9a-f]{64})<\/Pack>/g)].map((m) => m[1]!);
}

const packFile = (share: string, pack: string) => path.join(share, layout.packPath(pack));

async function treeBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await fs.stat(path.join(e.parentPath, e.name))).size;
  }
  return n;
}

/** Every key of the repository on `share`, unwrapped with the drill's symmetric key (what a restore holds). */
async function repositoryKeys(share: string, key: string): Promise<RepositoryKeys> {
  const target = new LocalFolderTarget(share);
  const config = (await readRepositoryConfig(target, layout))!;
  const k = parseSymmetricKey(key);
  return deriveRepositoryKeys(unwrapMaster(config, { kind: 'Key', keyId: symmetricKeyId(k), key: k }));
}

/**
 * The pack rewritten as someone who has only the public key (config.xml) could: every blob at its
 * place, with its length and the id the catalog expects, sealed so it decrypts, but holding other
 * bytes; its table of contents under a key of their own. Its name is kept, so the catalogs find it.
 */
async function forgePack(share: string, pack: string, keys: RepositoryKeys): Promise<void> {
  const { entries } = await readPackContents(new LocalFolderTarget(share), layout, pack, keys);
  const { ephemeral, blobKey } = newPackKey({ publicKey: keys.publicKey } as RepositoryKeys);
  const header = packHeader(ephemeral);
  const sealer = new BlobSealer();
  const blobs = entries!.map((e) => {
    const body = randomBytes(e.length - BLOB_OVERHEAD);
    return Buffer.concat(sealer.seal(blobKey, e.chunkId, { codec: 0, body, sealedLength: e.length }));
  });
  await fs.writeFile(packFile(share, pack), Buffer.concat([header, ...blobs, packTail(randomBytes(32), header, entries!)]));
}

async function flipByte(file: string, at: (size: number) => number): Promise<void> {
  const data = await fs.readFile(file);
  const i = at(data.length);
  data[i] = data[i]! ^ 0x5a;
  await fs.writeFile(file, data);
}

function expectIntegrityFailure(r: CliResult, what: string): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(12);
  expect(r.json?.IsValid, what).toBe(false);
  expect(r.errors.length, what).toBeGreaterThan(0);
  expect(
    r.errors.every((e) => e.ExitCode === 12),
    what,
  ).toBe(true);
}

describe('verification of backups in the repository (symmetric key)', () => {
  let d: Drill;
  let first: any;
  let second: any;
  let firstPacks: string[];
  /** The pack only the second backup needs (its new chunks). */
  let secondOnly: string[];
  let destinations: () => string;
  let before: string;

  beforeAll(async () => {
    // 3 MB of random bytes does not compress: Files spans several chunks.
    d = await makeDrill({ bigFileBytes: 3 * 1024 * 1024 });
    first = await d.backup();
    await fs.writeFile(path.join(d.files, 'cloud.json'), JSON.stringify({ region: 'local', scaleUnits: 5 }));
    second = await d.backup();
    firstPacks = await packsOf(await d.backupFolder(first.Name));
    const all = await packsOf(await d.backupFolder(second.Name));
    secondOnly = all.filter((p) => !firstPacks.includes(p));
    // The destinations hold something else now: a refused restore must leave them so.
    await fs.writeFile(path.join(d.files, 'cloud.json'), 'edited after the backups');
    await fs.writeFile(path.join(d.tarred, 'sub-2.json'), 'edited after the backups');
    destinations = () => `${fingerprint(d.files)}\nDB ${sha256(JSON.stringify(dbRows(d.db)))}\n${fingerprint(d.tarred)}`;
    before = destinations();
  });
  afterAll(async () => d?.cleanup());

  let copies = 0;
  async function copyShare(mutate: (share: string) => Promise<void>): Promise<string> {
    const share = path.join(d.root, `share-copy-${++copies}`);
    await fs.cp(d.share, share, { recursive: true });
    await mutate(share);
    return share;
  }
  const test = (share: string, name: string, keyed: boolean) => {
    const { args, stdin } = d.decryptArgs();
    return d.cli(['Test-InfrastructureBackup', '-Name', name, '-Path', share, ...(keyed ? args : [])], keyed ? { stdin } : {});
  };
  const testRepository = (share: string, extra: string[] = [], opts: { keyed?: boolean; home?: string } = {}) => {
    const { args, stdin } = d.decryptArgs();
    return runCli(
      opts.home ?? d.home,
      ['Test-BackupRepository', '-Path', share, ...extra, ...(opts.keyed ? args : [])],
      opts.keyed ? { stdin } : {},
    );
  };
  async function expectRefusedRestore(share: string, name: string, code = 12): Promise<void> {
    const { args, stdin } = d.decryptArgs();
    const r = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', name, '-Path', share, ...args], { stdin });
    expect(r.code, r.stderr).toBe(code);
    expect(destinations()).toBe(before);
  }

  it('an untouched backup passes both checks, every pack it needs read', async () => {
    expect(firstPacks.length).toBeGreaterThan(0);
    expect(secondOnly.length).toBeGreaterThan(0);
    const keyless = expectOk(await test(d.share, first.Name, false)).json;
    expect(keyless).toMatchObject({ IsValid: true, Mode: 'Hash', FilesChecked: 4, PacksChecked: firstPacks.length });
    expect(keyless.Files.find((f: any) => f.File === 'AzsRepository/packs').Message).toMatch(/present and hashing to their names/);
    const keyed = expectOk(await test(d.share, second.Name, true)).json;
    expect(keyed).toMatchObject({
      IsValid: true,
      Mode: 'Authenticated',
      FilesChecked: 4,
      PacksChecked: firstPacks.length + secondOnly.length,
    });
    expect(keyed.ChunksAuthenticated).toBeGreaterThanOrEqual(4);
    expect(keyed.Files.filter((f: any) => f.File.endsWith('.azscat')).map((f: any) => f.Message)).toEqual(
      Array(3).fill(expect.stringMatching(/^catalog authenticated/)),
    );
  });

  it('one byte changed in a pack fails the keyless check (hash) and the keyed one (chunk not authentic, role named); restore refuses', async () => {
    const pack = firstPacks[0]!;
    // The middle of the pack's bytes lies in a blob: the 3 MB of random data dominate it.
    const share = await copyShare((s) => flipByte(packFile(s, pack), (n) => Math.floor(n / 2)));
    const keyless = await test(share, first.Name, false);
    expectIntegrityFailure(keyless, 'keyless');
    expect(keyless.stderr).toContain(`${pack} is damaged: its bytes do not hash to its name`);
    const keyed = await test(share, first.Name, true);
    expectIntegrityFailure(keyed, 'keyed');
    const bad = keyed.json.Files.filter((f: any) => !f.Succeeded);
    expect(bad.length).toBeGreaterThan(0);
    expect(bad.every((f: any) => ['Files', 'Db', 'Tarred'].includes(f.RoleName))).toBe(true);
    expect(bad.some((f: any) => /is not authentic/.test(f.Message))).toBe(true);
    expect(
      keyed.errors.some((e) =>
        /role (Files|Db|Tarred) needs this pack: The chunk [0-9a-f]+ in pack [0-9a-f]+ is not authentic/.test(e.Message),
      ),
    ).toBe(true);
    await expectRefusedRestore(share, first.Name);
    // The location check finds it, with the backups that need it.
    const whole = await testRepository(share);
    expectIntegrityFailure(whole, 'Test-BackupRepository');
    expect(whole.json.PacksDamaged).toBe(1);
    const damaged = whole.json.Problems.find((p: any) => p.Severity === 'Error' && p.Path === layout.packPath(pack));
    expect(damaged.Backups).toEqual(expect.arrayContaining([first.Name, second.Name]));
  });

  it('a missing pack fails both checks and the location check; restore refuses', async () => {
    const pack = secondOnly[0]!;
    const share = await copyShare((s) => fs.rm(packFile(s, pack)));
    const keyless = await test(share, second.Name, false);
    expectIntegrityFailure(keyless, 'keyless');
    expect(keyless.stderr).toContain(`the pack ${pack} is missing`);
    expectIntegrityFailure(await test(share, second.Name, true), 'keyed');
    // The restore stops at the missing pack (exit 12: the backup is damaged), before any destination changes.
    await expectRefusedRestore(share, second.Name, 12);
    // The first backup does not need it: it still passes.
    expect((await test(share, first.Name, false)).code).toBe(0);
    const whole = await testRepository(share, [], { keyed: true });
    expectIntegrityFailure(whole, 'Test-BackupRepository');
    expect(whole.json).toMatchObject({ Mode: 'ReadData', PacksMissing: 1 });
    const missing = whole.json.Problems.filter((p: any) => p.Severity === 'Error').map((p: any) => p.Kind);
    // The index still names it: backups would rely on its chunks.
    expect(missing).toEqual(expect.arrayContaining(['PackMissing', 'IndexEntryWithoutPack']));
  });

  it("config.xml lost, cut short or another repository's fails the keyless check of every backup, naming it, as restore refuses", async () => {
    // Without a key the check cannot open the store, but it can see that no restore of these backups can:
    // it passed them all while every restore failed on config.xml.
    const config = (s: string) => path.join(s, layout.root, 'config.xml');
    const damages: [string, (s: string) => Promise<void>][] = [
      ['deleted', (s) => fs.rm(config(s))],
      ['cut short', async (s) => fs.truncate(config(s), (await fs.stat(config(s))).size / 2)],
      [
        "another repository's",
        async (s) => fs.writeFile(config(s), (await fs.readFile(config(s), 'utf8')).replace(/ Id="[^"]+"/, ` Id="${randomUUID()}"`)),
      ],
      [
        'made for another key',
        async (s) =>
          fs.writeFile(config(s), (await fs.readFile(config(s), 'utf8')).replace(/ PublicKey="[^"]+"/, ` PublicKey="${'ab'.repeat(32)}"`)),
      ],
    ];
    for (const [what, damage] of damages) {
      const share = await copyShare(damage);
      for (const name of [first.Name, second.Name]) {
        const keyless = await test(share, name, false);
        expectIntegrityFailure(keyless, `config.xml ${what}: ${name}`);
        expect(keyless.errors[0]!.Message, what).toContain(`Backup ${name}: AzsRepository/config.xml: `);
        expect(keyless.json.Files.find((f: any) => f.File === 'AzsRepository/config.xml')?.Succeeded, what).toBe(false);
      }
      await expectRefusedRestore(share, first.Name);
    }
  });

  it('config.xml made for another key fails the keyless location check, naming every backup that needs it', async () => {
    // Its public key is not the one BackupInfo.xml binds the backups to: no restore opens them. The
    // location check compared it only when it held keys, and passed the share without them.
    const config = (s: string) => path.join(s, layout.root, 'config.xml');
    const share = await copyShare(async (s) =>
      fs.writeFile(config(s), (await fs.readFile(config(s), 'utf8')).replace(/ PublicKey="[^"]+"/, ` PublicKey="${'ab'.repeat(32)}"`)),
    );
    const whole = await testRepository(share, [], { home: await freshHome(d) });
    expectIntegrityFailure(whole, 'Test-BackupRepository');
    const mismatch = whole.json.Problems.filter((p: any) => p.Kind === 'RepositoryMismatch');
    expect(mismatch.flatMap((p: any) => p.Backups).sort()).toEqual([first.Name, second.Name].sort());
    expect(mismatch[0].Message).toContain('with another key');
  });

  it('a backup folder whose BackupInfo.xml is gone fails the location check, naming it (it passed as if the backup were never made)', async () => {
    // Written under .partial and renamed once complete, a backup's folder on a local share is never without it.
    const folder = path.relative(d.share, await d.backupFolder(first.Name));
    const share = await copyShare((s) => fs.rm(path.join(s, folder, 'BackupInfo.xml')));
    for (const opts of [{ home: await freshHome(d) }, {}, { keyed: true }]) {
      const whole = await testRepository(share, [], opts);
      expectIntegrityFailure(whole, `Test-BackupRepository ${JSON.stringify(opts)}`);
      const lost = whole.json.Problems.filter((p: any) => p.Severity === 'Error');
      expect(lost.map((p: any) => `${p.Kind} ${p.Path} ${p.Backups}`)).toEqual([
        `BackupInfoMissing ${folder}/BackupInfo.xml ${first.Name}`,
      ]);
      expect(lost[0].Message).toContain('cannot be listed, checked or restored');
    }
  });

  it("a backup's catalog deleted: the checks and restore both refuse the backup as damaged (exit 12), naming the file", async () => {
    // Restore said exit 10, which means the share or the backup was not found or is unreachable, while both were there.
    const file = path.join(path.relative(d.share, await d.backupFolder(first.Name)), 'Files.azscat');
    const share = await copyShare((s) => fs.rm(path.join(s, file)));
    expectIntegrityFailure(await test(share, first.Name, false), 'keyless');
    expectIntegrityFailure(await test(share, first.Name, true), 'keyed');
    const { args, stdin } = d.decryptArgs();
    const r = await runCli(await freshHome(d), ['Restore-AzsBackup', '-Name', first.Name, '-Path', share, ...args], { stdin });
    expect(r.code, r.stderr).toBe(12);
    expect(r.errors[0]!.Message).toContain(first.Name);
    expect(r.errors[0]!.Message).toContain(file);
    expect(destinations()).toBe(before);
  });

  it('a pack replaced by one made with only the public key (forged chunks) is refused by the keyed check and by restore', async () => {
    const keys = await repositoryKeys(d.share, d.key!);
    const pack = firstPacks[0]!;
    const share = await copyShare((s) => forgePack(s, pack, keys));
    const keyed = await test(share, first.Name, true);
    expectIntegrityFailure(keyed, 'keyed');
    expect(keyed.errors.some((e) => /is not authentic/.test(e.Message))).toBe(true);
    await expectRefusedRestore(share, first.Name);
    const whole = await testRepository(share, [], { keyed: true });
    expectIntegrityFailure(whole, 'Test-BackupRepository');
  });

  it("a huge (sparse) file in a pack's place is refused from its size, not read to its end, by the keyless checks", {
    timeout: 600_000,
  }, async () => {
    const pack = firstPacks[0]!;
    // 20 GiB listed, no disk used: far over the largest pack a writer makes (one 64 MiB chunk and its table of contents).
    const share = await copyShare((s) => fs.truncate(packFile(s, pack), 20 * 1024 ** 3));
    let started = Date.now();
    const keyless = await test(share, first.Name, false);
    const backupSeconds = (Date.now() - started) / 1000;
    expectIntegrityFailure(keyless, 'keyless');
    expect(keyless.stderr).toContain(`${pack} is damaged`);
    expect(keyless.stderr).toContain('larger than any pack');
    started = Date.now();
    const whole = await testRepository(share, [], { home: await freshHome(d) });
    const repositorySeconds = (Date.now() - started) / 1000;
    expectIntegrityFailure(whole, 'Test-BackupRepository');
    expect(whole.json).toMatchObject({ Mode: 'Hash', PacksDamaged: 1 });
    const damaged = whole.json.Problems.find((p: any) => p.Severity === 'Error' && p.Path === layout.packPath(pack));
    expect(damaged.Message).toContain('it was not read');
    expect(whole.json.BytesRead).toBeLessThan(100 * 1024 * 1024);
    // Reading 20 GiB to hash it took minutes; refusing it takes what the other packs take.
    expect(backupSeconds).toBeLessThan(20);
    expect(repositorySeconds).toBeLessThan(20);
  });

  it('the location check passes on a healthy share, with the host keys and with the key, and reports orphans without failing', async () => {
    const hostKeys = expectOk(await testRepository(d.share)).json;
    expect(hostKeys).toMatchObject({ IsValid: true, Mode: 'Structure', BackupsChecked: 2, RepositoryBackups: 2, PacksDamaged: 0 });
    expect(hostKeys.PacksChecked).toBe(firstPacks.length + secondOnly.length);
    expect(hostKeys.IndexEntries).toBeGreaterThan(0);
    expect(hostKeys.Problems).toEqual([]);
    const keyed = expectOk(await testRepository(d.share, [], { keyed: true })).json;
    expect(keyed).toMatchObject({ IsValid: true, Mode: 'ReadData', Problems: [] });
    expect(keyed.ChunksAuthenticated).toBeGreaterThan(4);
    const keyless = expectOk(await testRepository(d.share, [], { home: await freshHome(d) })).json;
    expect(keyless).toMatchObject({ IsValid: true, Mode: 'Hash', IndexEntries: 0 });

    // The second backup removed: the packs only it needed are orphans, reported, not an error.
    const share = await copyShare(async (s) =>
      fs.rm(path.join(s, path.relative(d.share, await d.backupFolder(second.Name))), { recursive: true }),
    );
    const orphans = expectOk(await testRepository(share)).json;
    expect(orphans).toMatchObject({ IsValid: true, OrphanPacks: secondOnly.length, BackupsChecked: 1 });
    expect(orphans.Problems.map((p: any) => `${p.Severity} ${p.Kind} ${p.Path}`)).toEqual(
      secondOnly.map((p) => `Information OrphanPack ${layout.packPath(p)}`),
    );
  });

  it('a lost index: the location check warns, -Repair writes it anew; restore works without it and the next backup still dedups', async () => {
    const noIndex = await copyShare((s) => fs.rm(path.join(s, layout.indexFolder), { recursive: true }));
    const warned = expectOk(await testRepository(noIndex)).json;
    expect(warned.Problems.map((p: any) => p.Kind)).toEqual(expect.arrayContaining(['IndexMissing', 'PackNotIndexed']));
    const repaired = expectOk(await testRepository(noIndex, ['-Repair'])).json;
    expect(repaired.IndexRebuilt).toMatch(/^[0-9a-f]{64}$/);
    expect(repaired.Problems.every((p: any) => p.Severity === 'Repaired')).toBe(true);
    const after = expectOk(await testRepository(noIndex)).json;
    expect(after).toMatchObject({ IsValid: true, IndexFiles: 1, Problems: [] });

    // On the real share: no index at all.
    await fs.rm(path.join(d.share, layout.indexFolder), { recursive: true });
    const { args, stdin } = d.decryptArgs();
    const restored = await runCli(
      await freshHome(d),
      ['Restore-AzsBackup', '-Name', second.Name, '-Path', d.share, '-RoleName', 'Files', ...args],
      {
        stdin,
      },
    );
    expect(restored.code, restored.stderr).toBe(0);
    expect(JSON.parse(await fs.readFile(path.join(d.files, 'cloud.json'), 'utf8'))).toEqual({ region: 'local', scaleUnits: 5 });
    const packs = path.join(d.share, layout.packsFolder);
    const storeBefore = await treeBytes(packs);
    expect(storeBefore).toBeGreaterThan(3 * 1024 * 1024);
    await fs.appendFile(path.join(d.tarred, 'sub-1.json'), ' ');
    const third = await d.backup();
    const grown = (await treeBytes(packs)) - storeBefore;
    // Only the chunks that changed are stored again: the unchanged database not at all (its first
    // backup stored it whole), and of Files (whose start the restore rewrote) not the 3 MB of
    // random data, which would all come again had the index not been rebuilt from the packs.
    const stored = (b: any, role: string) => b.RoleStatus.find((r: any) => r.RoleName === role).StoredSize as number;
    expect(stored(third, 'Db')).toBeLessThan(stored(first, 'Db') / 4);
    expect(grown).toBeLessThan(0.8 * stored(first, 'Files'));
    expect((await fs.readdir(path.join(d.share, layout.indexFolder))).filter((n) => n.endsWith('.idx')).length).toBeGreaterThanOrEqual(1);
    expectOk(await test(d.share, third.Name, true));
    expect(expectOk(await testRepository(d.share)).json.Problems).toEqual([]);
  });
});

describe('verification of backups in the repository (certificate)', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'certificate', roles: false, bigFileBytes: 1024 * 1024 });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
  });
  afterAll(async () => d?.cleanup());

  it('with the .pfx, an untouched backup passes and one byte changed in its pack fails, naming the role', async () => {
    const backup = await d.backup();
    const { args, stdin } = d.decryptArgs();
    const ok = expectOk(await d.cli(['Test-InfrastructureBackup', '-Name', backup.Name, ...args], { stdin })).json;
    expect(ok).toMatchObject({ IsValid: true, Authenticity: 'Certificate', FilesChecked: 2 });
    expect(ok.ChunksAuthenticated).toBeGreaterThan(0);
    expect(expectOk(await d.cli(['Test-BackupRepository', ...args], { stdin })).json).toMatchObject({ IsValid: true, Mode: 'ReadData' });

    const [pack] = await packsOf(await d.backupFolder(backup.Name));
    await flipByte(packFile(d.share, pack!), (n) => Math.floor(n / 2));
    const keyed = await d.cli(['Test-InfrastructureBackup', '-Name', backup.Name, ...args], { stdin });
    expectIntegrityFailure(keyed, 'keyed');
    expect(keyed.json.Files.find((f: any) => !f.Succeeded).RoleName).toBe('Files');
    expectIntegrityFailure(await d.cli(['Test-InfrastructureBackup', '-Name', backup.Name]), 'keyless');
    expect(
      createHash('sha256')
        .update(await fs.readFile(packFile(d.share, pack!)))
        .digest('hex'),
    ).not.toBe(pack);
  });
});
