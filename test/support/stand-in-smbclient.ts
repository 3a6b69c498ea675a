import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/** A listing of the share's folder with free space, as the stand-ins print it. */
export const LISTING_WITH_FREE_SPACE =
  'printf "  .  D  0  Mon Dec  7 00:00:00 2026\\n\\n\\t\\t65535 blocks of size 1048576. 60000 blocks available\\n"';

/**
 * What smbclient prints for a `pwd` first among its commands (-c), as the target asks of an
 * upload, which it feeds only once this line shows (smb.ts): a stand-in that left it out had
 * every upload wait 10 s for it.
 */
export const PWD_LINE_WHEN_ASKED = `case "$*" in *" -c pwd;"*) printf '%s\\n' 'Current directory is \\\\127.0.0.1\\backups\\';; esac`;

/**
 * A stand-in smbclient first on the PATH for the tests of this file: a shell script, its body made
 * by `body(folder)` from its own folder (where it may keep state). Returns that folder, once the
 * suite has started.
 */
export function useStandInSmbclient(body: (folder: string) => string[]): () => string {
  let bin = '';
  let savedPath: string | undefined;
  beforeAll(async () => {
    bin = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-smb-stand-in-'));
    await fs.writeFile(path.join(bin, 'smbclient'), `${['#!/bin/sh', ...body(bin)].join('\n')}\n`, { mode: 0o755 });
    savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
  });
  afterAll(async () => {
    process.env.PATH = savedPath;
    await fs.rm(bin, { recursive: true, force: true });
  });
  return () => bin;
}
