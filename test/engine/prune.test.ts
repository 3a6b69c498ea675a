import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, shareFingerprint, type Drill, list } from '../support/cli.js';
import { redate } from '../support/redate.js';

/**
 * Retention through the command line: backups whose stamp folder is older than the retention
 * period go, except the newest successful one; leftovers of interrupted runs go too and never list
 * as backups; -DryRun only says what would go.
 */

const DAY = 86_400_000;
const stamp = (t: Date) =>
  t
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

/** Makes a backup look made `daysAgo` days back, the time the listing goes by. */
const age = (d: Drill, name: string, daysAgo: number): Promise<string> => redate(d, name, new Date(Date.now() - daysAgo * DAY));

async function names(d: Drill): Promise<string[]> {
  return list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).map((b) => b.Name);
}

describe('retention and leftovers', () => {
  let d: Drill;
  const b: any[] = [];
  const rel: string[] = [];
  let leftovers: string[];
  /** The kept backup as it was committed. */
  let kept: string;

  beforeAll(async () => {
    d = await makeDrill({ roles: false, retentionDays: 2 });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    for (let i = 0; i < 4; i++) b.push(await d.backup());
    rel[0] = await age(d, b[0].Name, 30);
    rel[1] = await age(d, b[1].Name, 29);
    rel[2] = await age(d, b[2].Name, 3); // just past the 2-day retention
    rel[3] = await age(d, b[3].Name, 1); // inside it

    // What an interrupted run (here, of another machine, two days ago) and an interrupted removal
    // leave behind, and an empty stamp folder.
    const now = stamp(new Date(Date.now() - 60_000));
    const partial = `MASBackup/${stamp(new Date(Date.now() - 2 * DAY))}/${randomUUID()}.partial`;
    const noInfo = `MASBackup/${now}/${randomUUID()}`;
    const emptyStamp = `MASBackup/${stamp(new Date(Date.now() - 5 * DAY))}`;
    await fs.mkdir(path.join(d.share, partial), { recursive: true });
    await fs.writeFile(path.join(d.share, partial, 'Files.azsrole'), 'half written');
    await fs.mkdir(path.join(d.share, noInfo), { recursive: true });
    await fs.writeFile(path.join(d.share, noInfo, 'Files.azsrole'), 'no BackupInfo.xml beside me');
    await fs.mkdir(path.join(d.share, emptyStamp), { recursive: true });
    // And an interrupted rewrite of a kept backup's BackupInfo.xml (Update-BackupEncryption).
    kept = shareFingerprint(path.join(d.share, rel[3]!));
    const rewrite = `${rel[3]}/.azs-partial-0123456789ab-BackupInfo.xml`;
    await fs.writeFile(path.join(d.share, rewrite), '<?xml version="1.0"?><BackupInfo');
    leftovers = [partial, noInfo, emptyStamp, rewrite];
  });
  afterAll(async () => d?.cleanup());

  it('leftovers never list as backups', async () => {
    expect(await names(d)).toEqual([b[3].Name, b[2].Name, b[1].Name, b[0].Name]);
    const one = await d.cli(['Get-InfrastructureBackup', '-Name', path.basename(leftovers[1]!)]);
    expect(one.code).toBe(10);
    expect(one.errors[0]?.ErrorId).toBe('BackupNotFound');
  });

  it('-DryRun lists exactly the expired backups and the leftovers, and deletes nothing', async () => {
    const before = shareFingerprint(d.share);
    const r = expectOk(await d.cli(['Invoke-BackupPrune', '-DryRun']));
    expect(r.json).toMatchObject({
      DryRun: true,
      RetentionPeriodInDays: 2,
      BackupsRemoved: 3,
      BackupsKept: 1,
      LeftoversRemoved: 4,
      PathsInProgress: [],
    });
    expect([...r.json.PathsToDelete].sort()).toEqual([rel[0], rel[1], rel[2], ...leftovers].sort());
    expect(shareFingerprint(d.share)).toBe(before);
    expect(await names(d)).toHaveLength(4);
  });

  it('prune deletes them and keeps the rest intact', async () => {
    const r = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(r.json.DryRun).toBe(false);
    expect([...r.json.PathsToDelete].sort()).toEqual([rel[0], rel[1], rel[2], ...leftovers].sort());
    for (const p of [rel[0], rel[1], rel[2], ...leftovers]) {
      await expect(fs.access(path.join(d.share, p!)), p).rejects.toThrow();
    }
    // Only the kept backup's stamp folder remains under MASBackup: no empty stamps, no .deleting.
    expect(await fs.readdir(path.join(d.share, 'MASBackup'))).toEqual([path.dirname(rel[3]!).split('/')[1]]);
    expect(shareFingerprint(path.join(d.share, rel[3]!))).toBe(kept);
    expect(await names(d)).toEqual([b[3].Name]);
    const { args, stdin } = d.decryptArgs();
    expect((await d.cli(['Test-InfrastructureBackup', '-Name', b[3].Name, ...args], { stdin })).code).toBe(0);

    // Nothing more to do the second time.
    const again = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(again.json.PathsToDelete).toEqual([]);
  });

  it('the newest successful backup stays even when every backup is past retention', async () => {
    const newer = await d.backup();
    const relOld = await age(d, b[3].Name, 20);
    const relNewest = await age(d, newer.Name, 10);
    const dry = expectOk(await d.cli(['Invoke-BackupPrune', '-DryRun']));
    expect(dry.json.PathsToDelete).toEqual([relOld]);
    const r = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(r.json.PathsToDelete).toEqual([relOld]);
    expect(await names(d)).toEqual([newer.Name]);
    await fs.access(path.join(d.share, relNewest, 'BackupInfo.xml'));
  });

  it('a newer partial backup does not count as the successful one to keep', async () => {
    const [kept] = await names(d);
    await d.registerCommand('Broken', ['sh', '-c', 'echo broken >&2; exit 3'], ['sh', '-c', 'cat >/dev/null']);
    const partial = await d.cli(['Start-InfrastructureBackup']);
    expect(partial.code).toBe(3);
    const relPartial = await age(d, partial.json.Name, 5);
    const r = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(r.json.PathsToDelete).toEqual([relPartial]);
    expect(await names(d)).toEqual([kept]);
  });

  it("keeps a recent .partial that no job here started: it may be another machine's backup still running", async () => {
    const [kept] = await names(d);
    // Written by "another machine": a backup started ten minutes ago, with data flowing into it.
    const foreign = `MASBackup/${stamp(new Date(Date.now() - 10 * 60_000))}/${randomUUID()}.partial`;
    await fs.mkdir(path.join(d.share, foreign), { recursive: true });
    await fs.writeFile(path.join(d.share, foreign, 'Files.azsrole'), 'still being written');
    const before = shareFingerprint(path.join(d.share, foreign));

    const r = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(r.json).toMatchObject({ LeftoversRemoved: 0, PathsToDelete: [], PathsInProgress: [foreign] });
    expect(shareFingerprint(path.join(d.share, foreign))).toBe(before);
    expect(await names(d)).toEqual([kept]);

    // A day after it started, it can no longer be running: then it is a leftover like any other.
    const stale = `MASBackup/${stamp(new Date(Date.now() - DAY - 60_000))}/${path.basename(foreign)}`;
    await fs.mkdir(path.dirname(path.join(d.share, stale)), { recursive: true });
    await fs.rename(path.join(d.share, foreign), path.join(d.share, stale));
    await fs.rmdir(path.dirname(path.join(d.share, foreign)));
    const later = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(later.json).toMatchObject({ LeftoversRemoved: 1, PathsToDelete: [stale], PathsInProgress: [] });
    await expect(fs.access(path.join(d.share, stale))).rejects.toThrow();
    expect(await names(d)).toEqual([kept]);
  });
});
