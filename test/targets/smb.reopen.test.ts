import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAzsError } from '../../src/errors.js';
import { openTarget } from '../../src/targets/index.js';

/**
 * The SMB target against a stand-in smbclient (first on the PATH) that, for its first few runs,
 * reports what Samba 4.17 was seen doing for a second or more at a time on loopback: the
 * connection dropped at the first command, `cd` into the configured folder. Nothing was done on
 * the share yet, so the target opens it again, after 0.25, 1 and 2 s; a server that keeps
 * dropping it is the share's connectivity failure.
 */

let bin: string;
let savedPath: string | undefined;
beforeAll(async () => {
  bin = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-smb-reopen-'));
  const script = [
    '#!/bin/sh',
    `runs="${bin}/runs"; drops=$(cat "${bin}/drops")`,
    'n=$(( $(cat "$runs" 2>/dev/null || echo 0) + 1 )); echo $n > "$runs"',
    `if [ $n -le $drops ]; then printf '%s\\n' 'cd \\folder\\: NT_STATUS_CONNECTION_DISCONNECTED' >&2; exit 1; fi`,
    'printf "  .  D  0  Mon Dec  7 00:00:00 2026\\n\\n\\t\\t65535 blocks of size 1048576. 60000 blocks available\\n"',
  ].join('\n');
  await fs.writeFile(path.join(bin, 'smbclient'), `${script}\n`, { mode: 0o755 });
  savedPath = process.env.PATH;
  process.env.PATH = `${bin}:${savedPath}`;
});
afterAll(async () => {
  process.env.PATH = savedPath;
  await fs.rm(bin, { recursive: true, force: true });
});

async function freeSpaceWhenDropped(drops: number): Promise<{ result: unknown; runs: number }> {
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
