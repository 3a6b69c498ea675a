import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAzsError } from '../../src/errors.js';
import { openTarget } from '../../src/targets/index.js';

/**
 * The SMB target against a stand-in smbclient (first on the PATH the target hands its runs) that
 * lists a share with free space, and in a `put` reads a little of its input and exits, as
 * smbclient does when the server goes away mid-transfer. Node then reports the closed input as
 * EPIPE or, when smbclient is gone between two writes, only as "Premature close"; either way the
 * write must fail as the share's connectivity (once: "Reading the folder ... failed: Premature
 * close"), never as the caller's data.
 */

let bin: string;
let savedPath: string | undefined;
beforeAll(async () => {
  bin = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-smb-stand-in-'));
  const script = [
    '#!/bin/sh',
    'case "$*" in',
    // Reads 64 KiB of the put's input, then goes away without a word, its input left unread.
    '  *"put -"*) head -c 65536 > /dev/null; exit 1 ;;',
    '  *) printf "  .  D  0  Mon Dec  7 00:00:00 2026\\n\\n\\t\\t65535 blocks of size 1048576. 60000 blocks available\\n"; exit 0 ;;',
    'esac',
  ].join('\n');
  await fs.writeFile(path.join(bin, 'smbclient'), `${script}\n`, { mode: 0o755 });
  savedPath = process.env.PATH;
  process.env.PATH = `${bin}:${savedPath}`;
});
afterAll(async () => {
  process.env.PATH = savedPath;
  await fs.rm(bin, { recursive: true, force: true });
});

describe('SMB target, smbclient gone mid-put', () => {
  it.each([
    ['pieces far apart (smbclient gone between two writes)', 20, 64 * 1024, 30],
    ['pieces back to back (a write meets the closed pipe)', 64, 1024 * 1024, 0],
  ])('fails as the share: %s', async (_what, count, size, pauseMs) => {
    const target = openTarget('\\\\127.0.0.1\\backups', { userName: 'backup', password: 'not-secret' });
    const data = Readable.from(
      (async function* () {
        for (let i = 0; i < count; i++) {
          yield Buffer.alloc(size, i);
          if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
        }
      })(),
    );
    const err = await target.write('AzsRepository/packs/.pending-test', data, { atomic: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isAzsError(err) ? err.alertType : err).toBe('ShareConnectivity');
  });
});
