import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AzsError } from '../../src/errors.js';
import { openTarget } from '../../src/targets/index.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';
import { withNoMoreThreadsAsync } from '../support/thread-limit.js';

/**
 * smbclient where no process may be started (posix_spawn: EAGAIN, under ulimit -u or a cgroup's
 * pids.max). Defects this pinned: a write to the share (by a target that had written before, as a
 * backup's every write but its first) failed as "Cannot read properties of null
 * (reading 'once')" (the data fed to an input smbclient never had), which a backup reported as
 * BackupFailed with no advice; and every other call as SmbClientFailed "smbclient failed on
 * smb://...: could not be started (posix_spawn: Resource temporarily unavailable)", advising to
 * check the share, which was fine.
 */

describe.skipIf(!sambaAvailable())('an SMB share where smbclient cannot be started', () => {
  let samba: SambaServer;
  beforeAll(async () => {
    samba = await startSamba();
  }, 60_000);
  afterAll(() => samba?.stop());

  const data = () => Readable.from([Buffer.alloc(1000, 1)]);
  const calls: [string, (t: ReturnType<typeof openTarget>) => Promise<unknown>][] = [
    // A target that has written once knows the share's free space and goes straight to the put.
    ['a first write', (t) => t.write('limit/file.bin', data())],
    ['a later write', (t) => t.write('limit/file2.bin', data())],
    ['read', (t) => t.read('limit/file.bin')],
    ['list', (t) => t.list('limit')],
  ];
  it.each(calls)('%s: says a limit on processes is reached, not that the share failed', async (call, run) => {
    const target = openTarget(samba.smbUrl, { userName: samba.userName, password: samba.password });
    if (call === 'a later write') await target.write('limit/file.bin', data());
    const outcome = await withNoMoreThreadsAsync(() =>
      run(target).then(
        () => 'it worked',
        (e: unknown) => e,
      ),
    );
    if (outcome === undefined) return; // no pids cgroup may be made here (needs root)
    const e = outcome as AzsError;
    expect(e.errorId, String(e.message)).toBe('SmbClientProcessLimit');
    expect(e.message).toMatch(/limit on processes/);
    expect(e.recommendedAction).toMatch(/ulimit -u/);
    expect((e as AzsError & { alertType?: string }).alertType).toBeUndefined();
  });
});
