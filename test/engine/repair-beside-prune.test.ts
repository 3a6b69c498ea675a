import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, expectOk, makeDrill, type Drill } from '../support/cli.js';
import { filesUnder, shareWithCollectablePack } from '../support/collectable.js';

/**
 * `Test-BackupRepository -Repair` rewrites the index from the tables of contents it read, then
 * deletes the index files it listed. It did so without the job lock that every other command that
 * changes the share takes: a prune of the same machine running meanwhile deleted a dead pack after
 * rewriting the index without it, and the repair then wrote an index file that still placed chunks
 * in that pack, so every later backup holding those chunks failed (RepositoryPackMissing). The
 * repair now holds the job lock.
 *
 * The repair is held at its confirmation prompt (-Confirm, on a terminal made by script(1)) after
 * it read every pack, and the prune runs then: the interleaving is exact, not a matter of timing.
 */

/** Waits until `seen` holds, up to `ms`. */
async function until(what: string, seen: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!seen()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Test-BackupRepository -Repair beside Invoke-BackupPrune on one machine', () => {
  let d: Drill;
  let data: string;
  let first: Buffer;
  beforeAll(async () => {
    d = await makeDrill({ roles: false, retentionDays: 7 });
    // The first backup's chunks are its own (a pack only it needs), past retention and the grace: the next prune collects that pack.
    ({ data, first } = await shareWithCollectablePack(d));
    // An index to repair: it was lost.
    for (const f of await filesUnder(path.join(d.share, 'AzsRepository', 'index'))) await fs.rm(f);
  }, 180_000);
  afterAll(async () => d?.cleanup());

  it('never leaves an index that places chunks in a pack the prune deleted: the next backup succeeds', async () => {
    // The repair, on a terminal so that -Confirm asks, held at its question.
    const repair = execa(
      'script',
      ['-q', '-e', '-c', `'${process.execPath}' '${CLI}' Test-BackupRepository -Repair -Confirm`, '/dev/null'],
      {
        env: cliEnv(d.home),
        extendEnv: false,
        stdin: 'pipe',
        reject: false,
        timeout: 120_000,
      },
    );
    let shown = '';
    repair.stdout!.on('data', (b: Buffer) => {
      shown += b.toString('utf8');
    });
    await until('the repair to ask before it writes', () => /Write the index of/.test(shown));

    // The prune of the same machine, meanwhile (refused while the repair holds the job, or run).
    const prune = await d.cli(['Invoke-BackupPrune']);
    expect([0, 11], prune.stderr).toContain(prune.code);

    repair.stdin!.write('y\r');
    const repaired = await repair;
    expect(repaired.exitCode, shown).not.toBe(undefined);

    // The first backup's data again: a backup deduplicates against whatever the index places.
    await fs.rm(path.join(data, 'b.bin'));
    await fs.writeFile(path.join(data, 'a.bin'), first);
    const next = await d.cli(['Start-InfrastructureBackup']);
    expect(next.errors.map((e) => e.ErrorId)).toEqual([]);
    expect(next.code, next.stderr).toBe(0);
    expect(next.json.Status).toBe('Succeeded');
    // And the one after it.
    const again = expectOk(await d.cli(['Start-InfrastructureBackup']), 'Start-InfrastructureBackup');
    expect(again.json.Status).toBe('Succeeded');
  }, 240_000);
});
