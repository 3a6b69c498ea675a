/**
 * Someone who may write to a mounted backup share, but not to the backup machine, replaced
 * `MASBackup` or `AzsRepository` on it with a symbolic link to a folder of the machine. The local
 * target followed it: Invoke-BackupPrune deleted the machine's folders there as leftovers (any
 * stamp-named folder's content that is no complete backup, here the backups another location keeps
 * on a local disk), Remove-InfrastructureBackup removed a backup there, and the next backup wrote
 * its packs and stamp folders onto the machine's own disk.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDrill, shareFingerprint, type Drill } from '../support/cli.js';

describe('a share whose MASBackup or AzsRepository is a symbolic link to the machine', () => {
  let d: Drill;
  let machine: string;
  let first: { Name: string };
  let machineBefore: string;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    first = await d.backup();
    // A folder of the machine shaped like a backup location: another location's backups on a
    // local disk, with a backup being written and one kept.
    machine = path.join(d.root, 'local-disk', 'MASBackup');
    await fs.cp(path.join(d.share, 'MASBackup'), machine, { recursive: true });
    await fs.mkdir(path.join(machine, '20200101T000000Z', '11111111-2222-3333-4444-555555555555.partial'), { recursive: true });
    await fs.writeFile(path.join(machine, '20200101T000000Z', '11111111-2222-3333-4444-555555555555.partial', 'Files.azsrole'), 'kept');
    machineBefore = shareFingerprint(path.dirname(machine));
  });
  afterAll(async () => d?.cleanup());

  const linkMasBackup = async () => {
    await fs.rename(path.join(d.share, 'MASBackup'), path.join(d.share, 'MASBackup.real'));
    await fs.symlink(machine, path.join(d.share, 'MASBackup'));
  };
  const unlinkMasBackup = async () => {
    await fs.unlink(path.join(d.share, 'MASBackup'));
    await fs.rename(path.join(d.share, 'MASBackup.real'), path.join(d.share, 'MASBackup'));
  };

  it('Invoke-BackupPrune deletes nothing of the machine, and says why', async () => {
    await linkMasBackup();
    try {
      const r = await d.cli(['Invoke-BackupPrune', '-Confirm:$false']);
      expect(shareFingerprint(path.dirname(machine))).toBe(machineBefore);
      expect(r.code).not.toBe(0);
      expect(r.errors[0]?.ErrorId).toBe('ShareSymbolicLink');
      expect(r.errors[0]?.TargetObject).toBe('MASBackup');
    } finally {
      await unlinkMasBackup();
    }
  });

  it('Remove-InfrastructureBackup removes nothing of the machine', async () => {
    await linkMasBackup();
    try {
      const r = await d.cli(['Remove-InfrastructureBackup', '-Name', first.Name, '-Confirm:$false']);
      expect(shareFingerprint(path.dirname(machine))).toBe(machineBefore);
      expect(r.errors[0]?.ErrorId).toBe('ShareSymbolicLink');
    } finally {
      await unlinkMasBackup();
    }
  });

  it('a backup writes nothing onto the machine', async () => {
    const elsewhere = path.join(d.root, 'system');
    await fs.mkdir(elsewhere);
    await fs.rename(path.join(d.share, 'AzsRepository'), path.join(d.share, 'AzsRepository.real'));
    await fs.symlink(elsewhere, path.join(d.share, 'AzsRepository'));
    try {
      await fs.writeFile(path.join(d.files, 'new.txt'), 'new data, so new packs');
      const r = await d.cli(['Start-InfrastructureBackup']);
      expect(await fs.readdir(elsewhere)).toEqual([]);
      expect(r.code).not.toBe(0);
      expect(r.errors[0]?.ErrorId).toBe('ShareSymbolicLink');
    } finally {
      await fs.unlink(path.join(d.share, 'AzsRepository'));
      await fs.rename(path.join(d.share, 'AzsRepository.real'), path.join(d.share, 'AzsRepository'));
    }
  });

  it('the share works again once the link is gone', async () => {
    const r = await d.cli(['Invoke-BackupPrune', '-Confirm:$false']);
    expect(r.errors).toEqual([]);
    await d.backup();
  });
});
