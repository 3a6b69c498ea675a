import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, expectOk, makeDrill, type Drill } from '../support/cli.js';
import { redate } from '../support/redate.js';

/**
 * `Test-BackupRepository -Repair` rewrites the index from the tables of
 * contents it read, then deletes the index files it listed, without the job lock that every other
 * command that changes the share takes. A prune of the same machine running meanwhile deletes a
 * dead pack after rewriting the index without it; the repair then writes an index file that still
 * places chunks in that pack. Every later backup holding those chunks deduplicates against the
 * pack that is gone, finds it missing at its commit (RepositoryPackMissing) and fails, and so does
 * the one after it ("run Start-InfrastructureBackup again" does not help; the scheduler never gets
 * to its prune, which would have fixed the index, since it runs only after a backup that did not throw).
 *
 * The repair is held at its confirmation prompt (-Confirm, on a terminal made by script(1)) after
 * it read every pack, and the prune runs then: the interleaving is exact, not a matter of timing.
 */

const DAY = 86_400_000;

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) out.push(path.join(entry.parentPath, entry.name));
  }
  return out;
}

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
    data = path.join(d.root, 'data');
    await fs.mkdir(data);
    await d.registerCommand('Data', ['sh', '-c', `cat '${data}'/*`], ['sh', '-c', `cat > '${path.join(d.root, 'restored.bin')}'`]);
    // The first backup's chunks are its own (a pack only it needs); the second's are others.
    first = randomBytes(2 * 1024 * 1024);
    await fs.writeFile(path.join(data, 'a.bin'), first);
    const old = await d.backup();
    await fs.rm(path.join(data, 'a.bin'));
    await fs.writeFile(path.join(data, 'b.bin'), randomBytes(1024 * 1024));
    await d.backup();
    // The first is past retention, and its pack past the grace: the next prune collects that pack.
    await redate(d, old.Name, new Date(Date.now() - 30 * DAY));
    const then = new Date(Date.now() - 2 * DAY);
    for (const f of await filesUnder(path.join(d.share, 'AzsRepository'))) await fs.utimes(f, then, then);
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
