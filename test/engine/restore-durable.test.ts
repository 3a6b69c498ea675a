import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, makeDrill, type Drill } from '../support/cli.js';

/**
 * What a restore wrote is on disk before it takes the place of the old data. Without it, a power
 * cut in the half minute after a restore said Succeeded (the kernel writes dirty pages back after
 * 30 s, ext4's delayed allocation later still) left the role's files empty or short where the old
 * ones had been removed; a kill -9 never showed it, since the page cache survives a process.
 * Watched with strace: the flush of the file system (syncfs) comes before the rename that puts the
 * staged folder in place, with and without the addons (`sync -f` then).
 */

let d: Drill;
let name: string;

beforeAll(async () => {
  d = await makeDrill({ bigFileBytes: 3 * 1024 * 1024 });
  name = (await d.backup()).Name as string;
});
afterAll(async () => d?.cleanup());

/** The system calls of a restore of the Files role (and its children's), as strace logs them. */
async function tracedRestore(env: Record<string, string>): Promise<string[]> {
  const log = path.join(d.root, `strace-${Object.keys(env).join('-') || 'native'}.log`);
  const { args, stdin } = d.decryptArgs();
  const r = await execa(
    'strace',
    [
      '-f',
      '-qq',
      '-e',
      'trace=syncfs,rename,renameat,renameat2,execve',
      '-o',
      log,
      process.execPath,
      CLI,
      'Restore-AzsBackup',
      '-Name',
      name,
      '-RoleName',
      'Files',
      ...args,
      '--output',
      'json',
    ],
    { env: cliEnv(d.home, env), extendEnv: false, input: stdin, reject: false, timeout: 60_000 },
  );
  expect(r.exitCode, String(r.stderr)).toBe(0);
  return (await fs.readFile(log, 'utf8')).split('\n');
}

describe('a restore and a power cut', () => {
  for (const [label, env] of [
    ['with the addons', {}],
    ['without them (AZSBACKUP_NATIVE=off)', { AZSBACKUP_NATIVE: 'off' }],
  ] as [string, Record<string, string>][]) {
    it(`flushes the restored folder to disk before it goes into place (${label})`, async () => {
      await fs.writeFile(path.join(d.files, 'cloud.json'), 'changed since the backup');
      const lines = await tracedRestore(env);
      const base = path.basename(d.files);
      // The staged folder takes the destination's name: renameat2 with RENAME_EXCHANGE, or a rename.
      const intoPlace = lines.findIndex((l) => /rename/.test(l) && l.includes(`.${base}.azs-staging-`) && l.includes(`/${base}"`));
      expect(intoPlace, lines.filter((l) => /rename/.test(l)).join('\n')).toBeGreaterThan(-1);
      const flush = lines.findIndex((l) => /syncfs\(\d+\)\s+= 0/.test(l) || /execve\("[^"]*sync", \["sync", "-f"/.test(l));
      expect(flush, lines.join('\n').slice(0, 4000)).toBeGreaterThan(-1);
      expect(flush).toBeLessThan(intoPlace);
      expect(await fs.readFile(path.join(d.files, 'cloud.json'), 'utf8')).not.toBe('changed since the backup');
    });
  }
});
