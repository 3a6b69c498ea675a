import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
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

/**
 * An upload (`put -` fed from smbclient's stdin) is opened again only while its stream is
 * untouched: the target feeds it once smbclient has printed `pwd`'s line (under stdbuf -oL), which
 * it does once the share and folder are open. A stand-in that drops the connection at `cd` never
 * printed it; one that drops later had been fed part of the stream, and is not run again.
 */
describe('SMB target, an upload whose connection the server drops', () => {
  const uploadStandIn = useStandInSmbclient((bin) => [
    'cmds=; while [ $# -gt 0 ]; do [ "$1" = -c ] && cmds=$2; shift; done',
    'case "$cmds" in',
    '*"put - "*)',
    `  n=$(( $(cat "${bin}/puts" 2>/dev/null || echo 0) + 1 )); echo $n > "${bin}/puts"`,
    `  if [ $n -le $(cat "${bin}/drops") ]; then printf '%s\\n' 'cd \\folder\\: NT_STATUS_CONNECTION_DISCONNECTED' >&2; exit 1; fi`,
    // An smbclient whose stdout stdbuf cannot line-buffer: pwd's line comes out only at its exit.
    `  if [ -e "${bin}/buffered" ]; then cat > "${bin}/stored"; printf '%s\\n' 'Current directory is \\\\127.0.0.1\\backups\\folder\\'; exit 0; fi`,
    `  case "$cmds" in pwd\\;*) printf '%s\\n' 'Current directory is \\\\127.0.0.1\\backups\\folder\\';; esac`,
    `  if [ -e "${bin}/late" ]; then head -c 1000 >/dev/null; printf '%s\\n' 'cd \\folder\\: NT_STATUS_CONNECTION_DISCONNECTED' >&2; exit 1; fi`,
    // A parent folder that exists already: smbclient's mkdir reports it and goes on.
    `  if [ -e "${bin}/collides" ]; then printf '%s\\n' 'NT_STATUS_OBJECT_NAME_COLLISION making remote directory \\folder\\dir'; fi`,
    `  cat > "${bin}/stored"; printf '%s\\n' 'putting file - as \\folder\\f (1 kb/s)'; exit 0;;`,
    `*) ${LISTING_WITH_FREE_SPACE};;`,
    'esac',
  ]);

  const data = crypto.randomBytes(3 * 1024 * 1024 + 17);

  /** `data` in 64 KiB pieces, counting the pieces handed out. */
  function source(): { stream: Readable; pieces: () => number } {
    let offset = 0;
    let pieces = 0;
    const stream = new Readable({
      read() {
        if (offset >= data.length) return void this.push(null);
        pieces++;
        this.push(data.subarray(offset, offset + 65536));
        offset += 65536;
      },
    });
    return { stream, pieces: () => pieces };
  }

  async function upload(
    drops: number,
    opts: { late?: boolean; buffered?: boolean; collides?: boolean; path?: string; stream?: Readable } = {},
  ) {
    const bin = uploadStandIn();
    await fs.writeFile(path.join(bin, 'drops'), String(drops));
    for (const f of ['puts', 'stored', 'late', 'buffered', 'collides']) await fs.rm(path.join(bin, f), { force: true });
    for (const flag of ['late', 'buffered', 'collides'] as const) if (opts[flag]) await fs.writeFile(path.join(bin, flag), '');
    const savedPath = process.env.PATH;
    if (opts.path !== undefined) process.env.PATH = opts.path;
    try {
      const target = openTarget('\\\\127.0.0.1\\backups\\folder', { userName: 'backup', password: 'not-secret' });
      const { stream, pieces } = source();
      const result = await target.write('dir/f', opts.stream ?? stream).catch((e: unknown) => e);
      const stored = await fs.readFile(path.join(bin, 'stored')).catch(() => undefined);
      return { result, stored, pieces: pieces(), puts: Number(await fs.readFile(path.join(bin, 'puts'), 'utf8')) };
    } finally {
      process.env.PATH = savedPath;
    }
  }

  const droppedWhileOpened = (e: unknown) => (isAzsError(e) ? [e.alertType, e.message] : e);

  it('opens the share again until it stays open, then stores the stream whole, read once', async () => {
    const { result, stored, pieces, puts } = await upload(2);
    expect(puts).toBe(3);
    expect(result).toEqual({ bytes: data.length });
    expect(stored?.equals(data)).toBe(true);
    expect(pieces).toBe(Math.ceil(data.length / 65536));
  }, 20_000);

  it('fails as the share after four runs when it keeps dropping it, the stream untouched', async () => {
    const { result, stored, pieces, puts } = await upload(10);
    expect(puts).toBe(4);
    expect(droppedWhileOpened(result)).toEqual(['ShareConnectivity', expect.stringContaining('dropped the connection while')]);
    expect(stored).toBeUndefined();
    expect(pieces).toBe(0);
  }, 20_000);

  it('is not run again once the share was open and smbclient read part of the stream', async () => {
    const { result, stored, pieces, puts } = await upload(0, { late: true });
    expect(puts).toBe(1);
    expect(droppedWhileOpened(result)).toEqual(['ShareConnectivity', expect.stringContaining('dropped the connection while')]);
    expect(stored).toBeUndefined();
    expect(pieces).toBeGreaterThan(0);
  }, 20_000);

  it("fails with the source's error when the source breaks mid-upload, though smbclient reported only a folder that exists", async () => {
    // Fed once the share is open, smbclient reads as the source breaks: closing its stdin then
    // would end the file, and its one failure (a parent folder that exists) is no reason to
    // take the write as done.
    const broken = Readable.from(
      (async function* () {
        yield data.subarray(0, 512 * 1024);
        throw new Error('source broke');
      })(),
    );
    const { result, puts } = await upload(0, { collides: true, stream: broken });
    expect(puts).toBe(1);
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toBe('source broke');
  }, 20_000);

  it('feeds the stream all the same when the share-open line does not come in 10 s (an smbclient stdbuf cannot reach)', async () => {
    const started = Date.now();
    const { result, stored, puts } = await upload(0, { buffered: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_900);
    expect(puts).toBe(1);
    expect(result).toEqual({ bytes: data.length });
    expect(stored?.equals(data)).toBe(true);
  }, 30_000);

  it('without stdbuf on the PATH, feeds the stream at once and is not run again, as before', async () => {
    const bin = uploadStandIn();
    const tools = path.join(bin, 'tools');
    await fs.mkdir(tools, { recursive: true });
    for (const tool of ['cat', 'head'])
      await fs
        .symlink(
          execFileSync('sh', ['-c', `command -v ${tool}`])
            .toString()
            .trim(),
          path.join(tools, tool),
        )
        .catch(() => {});
    const { result, puts } = await upload(1, { path: `${bin}:${tools}` });
    expect(puts).toBe(1);
    expect(droppedWhileOpened(result)).toEqual(['ShareConnectivity', expect.stringContaining('dropped the connection while')]);
  }, 20_000);
});
