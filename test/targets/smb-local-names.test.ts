/**
 * readSmallFiles fetches into a local folder named inside smbclient's -c command line, where ';'
 * ends a command and '"' toggles quoting, with no escape for either. Under an AZSBACKUP_HOME whose
 * path held one (/srv/azs;prod), the command was cut at it: smbclient wrote each file it fetched
 * beside the home, outside the owner-only private folder (to /srv/azs, replacing a file there),
 * and every file read as missing: a repository's config and index files, each backup's
 * BackupInfo.xml, on which the repository's and the catalog's decisions rest.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTarget } from '../../src/targets/index.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';

describe.skipIf(!sambaAvailable())('SMB small reads under a home whose path smbclient cannot quote', () => {
  let samba: SambaServer;
  const bases: string[] = [];
  beforeAll(async () => {
    samba = await startSamba();
  });
  afterAll(async () => {
    await samba?.stop();
    for (const base of bases) fs.rmSync(base, { recursive: true, force: true });
  });

  for (const home of ['azs;prod', 'azs"prod']) {
    it(`neither writes outside the private folder nor reports a present file missing (${home})`, async () => {
      const base = fs.mkdtempSync(path.join(os.tmpdir(), 'azs-home-'));
      bases.push(base);
      const privateDir = path.join(base, home, 'private', 'owner');
      const t = openTarget(samba.smbUrl, { userName: samba.userName, password: samba.password }, privateDir);
      await t.write('BackupInfo.xml', Readable.from([Buffer.from('present')]));

      const read = await t.readSmallFiles(['BackupInfo.xml']).then(
        (files) => files,
        (e: unknown) => e,
      );

      expect(fs.readdirSync(base)).toEqual([home]);
      if (Array.isArray(read)) expect(read[0]?.toString()).toBe('present');
      else expect(read).toMatchObject({ errorId: 'LocalPathUnsupported', recommendedAction: expect.stringContaining('AZSBACKUP_HOME') });
    });
  }
});
