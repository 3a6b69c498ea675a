/**
 * smbclient reads the user name of its auth file as it reads -U: 'user%password'. A user name
 * holding '%' (which Windows account names may) was written there as given, so smbclient logged on
 * as the part before the '%', with the part after it as the password, and the password the
 * operator gave was never used: the share was opened with another account than the one configured.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTarget } from '../../src/targets/index.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';

describe.skipIf(!sambaAvailable())('an SMB user name holding %', () => {
  let samba: SambaServer;
  beforeAll(async () => {
    samba = await startSamba();
  });
  afterAll(async () => {
    await samba?.stop();
  });

  it('never logs on with what follows the % as the password', async () => {
    const opened = await Promise.resolve()
      .then(() => openTarget(samba.smbUrl, { userName: `${samba.userName}%${samba.password}`, password: 'not the password' }).list(''))
      .then(
        () => 'opened',
        (e: { errorId?: string }) => e.errorId,
      );
    expect(opened).not.toBe('opened');
    expect(opened).toBe('UnsupportedCredential');
  });
});
