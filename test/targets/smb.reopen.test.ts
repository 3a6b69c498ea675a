import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAzsError } from '../../src/errors.js';
import { openTarget } from '../../src/targets/index.js';
import { LISTING_WITH_FREE_SPACE, useStandInSmbclient } from '../support/stand-in-smbclient.js';

/**
 * The SMB target against a stand-in smbclient (first on the PATH) that, for its first few runs,
 * reports what Samba 4.17 was seen doing for a second or more at a time on loopback: the
 * connection dropped at the first command, `cd` into the configured folder. Nothing was done on
 * the share yet, so the target opens it again, after 0.25, 1 and 2 s; a server that keeps
 * dropping it is the share's connectivity failure.
 */

const standIn = useStandInSmbclient((bin) => [
  `runs="${bin}/runs"; drops=$(cat "${bin}/drops")`,
  'n=$(( $(cat "$runs" 2>/dev/null || echo 0) + 1 )); echo $n > "$runs"',
  `if [ $n -le $drops ]; then printf '%s\\n' 'cd \\folder\\: NT_STATUS_CONNECTION_DISCONNECTED' >&2; exit 1; fi`,
  LISTING_WITH_FREE_SPACE,
]);

async function freeSpaceWhenDropped(drops: number): Promise<{ result: unknown; runs: number }> {
  const bin = standIn();
  await fs.writeFile(path.join(bin, 'drops'), String(drops));
  await fs.rm(path.join(bin, 'runs'), { force: true });
  const target = openTarget('\\\\127.0.0.1\\backups\\folder', { userName: 'backup', password: 'not-secret' });
  const result = await target.freeSpace().catch((e: unknown) => e);
  return { result, runs: Number(await fs.readFile(path.join(bin, 'runs'), 'utf8')) };
}

describe('SMB target, a server that drops the connection as the share is opened', () => {
  it('opens it again, three times at most, and goes on', async () => {
    const { result, runs } = await freeSpaceWhenDropped(3);
    expect(runs).toBe(4);
    expect(result).toMatchObject({ available: 60000 * 1048576 });
  }, 20_000);

  it('fails as the share when it keeps dropping it', async () => {
    const { result, runs } = await freeSpaceWhenDropped(10);
    expect(runs).toBe(4);
    expect(isAzsError(result) ? [result.alertType, result.message] : result).toEqual([
      'ShareConnectivity',
      expect.stringContaining('dropped the connection while'),
    ]);
  }, 20_000);
});
