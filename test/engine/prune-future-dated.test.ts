import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stampOf } from '../../src/catalog/layout.js';
import { expectOk, makeDrill, type Drill, list } from '../support/cli.js';
import { redate } from '../support/redate.js';

/**
 * Retention keeps the newest successful backup whatever its age, so that a share whose backups
 * have failed for longer than the retention period still holds one to restore. Defect this pinned:
 * "newest" went by the stamp folder alone, so a successful backup dated in the future (made while
 * the clock was a year ahead, or a copy a writer of the share put under a later stamp) was the one
 * kept, and every real backup past the window was deleted, the newest good one included; the
 * future-dated one, never past the window, was kept for good and nobody was told. Likewise a backup
 * whose folder a writer of the share moved under a later stamp (one its BackupInfo.xml, which
 * seals its stamp, disagrees with, so that no restore takes it).
 */

const DAY = 86_400_000;

async function names(d: Drill): Promise<string[]> {
  return list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).map((b) => b.Name);
}

/**
 * What a writer of the share can make without any key: a copy of a backup under another name and
 * stamp, its digest made to match; with `dated`, its CreatedDateTime made the stamp's too.
 */
async function plantedCopy(d: Drill, of: string, when: Date, dated = false): Promise<string> {
  const name = randomUUID();
  const rel = `MASBackup/${stampOf(when)}/${name}`;
  await fs.cp(await d.backupFolder(of), path.join(d.share, rel), { recursive: true });
  const file = path.join(d.share, rel, 'BackupInfo.xml');
  let text = (await fs.readFile(file, 'utf8')).replaceAll(of, name);
  if (dated) text = text.replace(/<CreatedDateTime>[^<]*<\/CreatedDateTime>/, `<CreatedDateTime>${when.toISOString()}</CreatedDateTime>`);
  const seal = text.indexOf('<Seal Digest="');
  const digest = createHash('sha256').update(text.slice(0, seal)).digest('hex');
  await fs.writeFile(file, `${text.slice(0, seal)}<Seal Digest="${digest}"${text.slice(seal + 14 + 64 + 1)}`);
  return rel;
}

describe('prune beside a backup dated in the future', () => {
  let d: Drill;

  beforeAll(async () => {
    d = await makeDrill({ roles: false, retentionDays: 2 });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
  });
  afterAll(async () => d?.cleanup());

  it('made while the clock was ahead: the newest real successful backup stays, and prune says why the other does', async () => {
    // The backups have failed for ten days: the two real ones are past the 2-day window.
    const [older, newest, ahead] = [await d.backup(), await d.backup(), await d.backup()];
    const relOlder = await redate(d, older.Name, new Date(Date.now() - 12 * DAY));
    const relNewest = await redate(d, newest.Name, new Date(Date.now() - 10 * DAY));
    // Made 11 days ago by a machine whose clock was a year ahead.
    const relAhead = await redate(d, ahead.Name, new Date(Date.now() + 354 * DAY));

    const dry = expectOk(await d.cli(['Invoke-BackupPrune', '-DryRun']));
    expect(dry.json.PathsToDelete).toEqual([relOlder]);
    expect(dry.json.PathsInFuture).toEqual([relAhead]);
    expect(dry.stderr).toMatch(new RegExp(`"Warning".*${ahead.Name}.*in the future`, 's'));

    const r = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(r.json).toMatchObject({ PathsToDelete: [relOlder], PathsInFuture: [relAhead], BackupsKept: 2, BackupsRemoved: 1 });
    expect((await names(d)).sort()).toEqual([newest.Name, ahead.Name].sort());
    await fs.access(path.join(d.share, relNewest, 'BackupInfo.xml'));
    const { args, stdin } = d.decryptArgs();
    expect((await d.cli(['Test-InfrastructureBackup', '-Name', newest.Name, ...args], { stdin })).code).toBe(0);
  });

  it('planted by a writer of the share: the real newest successful backup stays', async () => {
    for (const n of await names(d)) expectOk(await d.cli(['Remove-InfrastructureBackup', '-Name', n, '-Force']));
    const real = await d.backup();
    const relReal = await redate(d, real.Name, new Date(Date.now() - 5 * DAY));
    const planted = await plantedCopy(d, real.Name, new Date(Date.now() + 30 * DAY));

    const r = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(r.json.PathsToDelete).toEqual([]);
    expect(r.json.PathsInFuture).toEqual([planted]);
    await fs.access(path.join(d.share, relReal, 'BackupInfo.xml'));
  });
  it('planted by a writer of the share with a date a minute ago: the real newest successful backup stays, as the copy proves nothing', async () => {
    for (const n of await names(d)) expectOk(await d.cli(['Remove-InfrastructureBackup', '-Name', n, '-Force']));
    const real = await d.backup();
    const relReal = await redate(d, real.Name, new Date(Date.now() - 5 * DAY));
    // Its digest matches, but its MAC (keyed from the data key, bound to its name and stamp) cannot.
    const planted = await plantedCopy(d, real.Name, new Date(Date.now() - 60_000), true);

    const r = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(r.json.PathsToDelete).toEqual([]);
    await fs.access(path.join(d.share, relReal, 'BackupInfo.xml'));
    const { args, stdin } = d.decryptArgs();
    expect((await d.cli(['Test-InfrastructureBackup', '-Name', real.Name, ...args], { stdin })).code).toBe(0);
    expect((await d.cli(['Test-InfrastructureBackup', '-Name', planted.split('/')[2]!, ...args], { stdin })).code).not.toBe(0);
  });

  it("a scheduled backup's prune says the same of a backup dated in the future as Invoke-BackupPrune does", async () => {
    for (const n of await names(d)) expectOk(await d.cli(['Remove-InfrastructureBackup', '-Name', n, '-Force']));
    const real = await d.backup();
    const planted = await plantedCopy(d, real.Name, new Date(Date.now() + 30 * DAY));
    expectOk(await d.cli(['Set-BackupShare', '-IsBackupSchedulerEnabled', '$true', '-BackupFrequencyInHours', '4']));
    // The last success five hours ago: the tick takes a backup, then prunes.
    const configFile = path.join(d.home, 'config.json');
    const config = JSON.parse(await fs.readFile(configFile, 'utf8'));
    config.lastSuccessfulBackupTime = new Date(Date.now() - 5 * 3_600_000).toISOString();
    await fs.writeFile(configFile, JSON.stringify(config));

    const tick = expectOk(await d.cli(['Invoke-BackupScheduler']));
    expect(tick.json?.Status).toBe('Succeeded');
    expect(tick.stderr).toMatch(new RegExp(`"Warning".*${planted.split('/')[2]}.*in the future`, 's'));
    expectOk(await d.cli(['Set-BackupShare', '-IsBackupSchedulerEnabled', '$false']));
  });

  it('moved by a writer of the share into a later stamp folder (which its BackupInfo.xml disagrees with): the real newest successful backup stays', async () => {
    for (const n of await names(d)) expectOk(await d.cli(['Remove-InfrastructureBackup', '-Name', n, '-Force']));
    const [older, newer] = [await d.backup(), await d.backup()];
    const relOlder = await redate(d, older.Name, new Date(Date.now() - 10 * DAY));
    const relNewer = await redate(d, newer.Name, new Date(Date.now() - 5 * DAY));
    // The older one moved, as it is, under the stamp of an hour ago: a restore refuses it (the stamp is sealed in).
    const moved = `MASBackup/${stampOf(new Date(Date.now() - 3_600_000))}/${older.Name}`;
    await fs.mkdir(path.dirname(path.join(d.share, moved)), { recursive: true });
    await fs.rename(path.join(d.share, relOlder), path.join(d.share, moved));
    await fs.rmdir(path.dirname(path.join(d.share, relOlder)));

    const r = expectOk(await d.cli(['Invoke-BackupPrune']));
    expect(r.json.PathsToDelete).toEqual([]);
    await fs.access(path.join(d.share, relNewer, 'BackupInfo.xml'));
  });
});
