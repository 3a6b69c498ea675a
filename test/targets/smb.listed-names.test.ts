/**
 * A name smbclient's -c command line cannot carry, listed from the share, stopped prune. ';' is a
 * legal file name character on SMB (Windows and Samba keep it), but it ends a command in
 * smbclient's -c, so the SMB target refuses to name it; anyone who may write to the share could
 * put `MASBackup/<stamp>/a;b` there, prune took it for a leftover to delete, and every
 * Invoke-BackupPrune then failed with an internal error, before the repository's unused data was
 * collected: retention stopped and the share filled.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';
import { makeSmbDrill, type SmbDrill } from '../support/smb-drill.js';

describe.skipIf(!sambaAvailable())('names on an SMB share that smbclient commands cannot carry', () => {
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

  it('do not stop Invoke-BackupPrune', async () => {
    const backup = await d.backup();
    const masBackup = path.join(d.diskFolder, 'MASBackup');
    const [stamp] = await fs.readdir(masBackup);
    // Another writer's folder beside the backup, and a stamp folder holding only such a name.
    const { uid, gid } = await fs.stat(samba.root);
    for (const folder of [
      path.join(masBackup, stamp!, 'stray;copy'),
      path.join(masBackup, '20200101T000000Z'),
      path.join(masBackup, '20200101T000000Z', 'a;b'),
    ]) {
      await fs.mkdir(folder);
      await fs.chown(folder, uid, gid);
    }

    const r = await d.cli(['Invoke-BackupPrune', '-Confirm:$false']);

    expect(r.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ BackupsKept: 1, BackupsRemoved: 0 });
    expect(await fs.readdir(path.join(masBackup, stamp!))).toContain(backup.Name);
  });
});
