import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/** A listing of the share's folder with free space, as the stand-ins print it. */
export const LISTING_WITH_FREE_SPACE =
  'printf "  .  D  0  Mon Dec  7 00:00:00 2026\\n\\n\\t\\t65535 blocks of size 1048576. 60000 blocks available\\n"';

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
