import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, makeDrill, resultOf, type Drill } from '../support/cli.js';
import { shareWithCollectablePack } from '../support/collectable.js';

/**
 * Prune's order is what keeps the repository consistent at every crash point
 * (docs/REPOSITORY.md 9.4): new index files, then the superseded index files deleted, then the dead
 * packs deleted. On a local or mounted folder the deletions were unlink() calls with no fsync of
 * the folder after them, so nothing made the removal of the old index files reach the disk before
 * the removal of the packs they name: after a power cut an old index file could be back while its
 * pack was gone. Power loss cannot be simulated here, so the test reads the order of the system
 * calls of a real prune (strace), as test/fs/durable-write.test.ts does for writes: the index
 * folder must be fsynced after its last deletion and before the first pack is deleted.
 */

const hasStrace = spawnSync('strace', ['-V']).status === 0;

describe.skipIf(!hasStrace)('prune deletes superseded index files durably before it deletes packs', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ roles: false, retentionDays: 7 });
    await shareWithCollectablePack(d);
  }, 180_000);
  afterAll(async () => d?.cleanup());

  it('fsyncs the index folder after removing the old index files and before the first pack goes', async () => {
    const log = path.join(d.root, 'prune.strace');
    const run = await execa(
      'strace',
      ['-f', '-qq', '-y', '-o', log, '-e', 'trace=fsync,unlink,unlinkat', process.execPath, CLI, 'Invoke-BackupPrune', '--output', 'json'],
      { env: cliEnv(d.home), extendEnv: false, reject: false, timeout: 120_000 },
    );
    const pruned = resultOf(run.exitCode ?? -1, String(run.stdout), String(run.stderr));
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.json.PacksRemoved).toBeGreaterThan(0);

    const index = path.join(d.share, 'AzsRepository', 'index');
    const packs = path.join(d.share, 'AzsRepository', 'packs');
    const calls = (await fs.readFile(log, 'utf8'))
      .split('\n')
      .map((line) => line.replace(/^\d+\s+/, ''))
      .filter((line) => / = 0$/.test(line));
    // unlink("…/index/<id>.idx") by path, or unlinkat(<fd of …/index>, "<id>.idx") from the folder held open.
    const indexUnlinks = calls.flatMap((c, i) => (/^unlink(at)?\(.*\/AzsRepository\/index(\/|>, ")[0-9a-f]{64}\.idx"/.test(c) ? [i] : []));
    const firstPackUnlink = calls.findIndex((c) => c.includes(`${packs}/`) && /^unlink(at)?\(.*\.pack"/.test(c));
    expect(indexUnlinks.length).toBeGreaterThan(0);
    expect(firstPackUnlink).toBeGreaterThan(indexUnlinks.at(-1)!);
    const between = calls.slice(indexUnlinks.at(-1)! + 1, firstPackUnlink);
    expect(
      between.some((c) => c.startsWith(`fsync(`) && c.includes(`<${index}>`)),
      between.join('\n'),
    ).toBe(true);
  }, 180_000);
});
