import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, warningsIn, type Drill } from '../support/cli.js';

/**
 * A restore on a redeployed machine usually runs while the services are up. A program that keeps
 * a role's file open goes on using that file, the old one, once the restored one is in its place:
 * it serves the old data, and what it writes is lost at its next start. The restore cannot close
 * another program's files; it says which processes had them open, so the operator restarts them.
 */

let d: Drill;
let name: string;
const holders: ResultPromise[] = [];

/** A process (sleep, by exec) holding `file` open on descriptor 3 until the suite ends. */
async function holdOpen(file: string): Promise<number> {
  const p = execa('bash', ['-c', 'exec 3<"$0"; exec sleep 120', file], { reject: false });
  holders.push(p);
  // Until bash has exec'd sleep, the descriptor may not be open yet.
  for (let i = 0; i < 100; i++) {
    const comm = await execa('cat', [`/proc/${p.pid}/comm`], { reject: false });
    if (comm.stdout.trim() === 'sleep') break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return p.pid!;
}

beforeAll(async () => {
  d = await makeDrill();
  name = (await d.backup()).Name as string;
});
afterAll(async () => {
  for (const p of holders) p.kill('SIGKILL');
  await Promise.all(holders);
  await d?.cleanup();
});

describe('a restore over roles whose files are open in running programs', () => {
  it('says nothing of the kind when no program has them open', async () => {
    const { args, stdin } = d.decryptArgs();
    const r = expectOk(await d.cli(['Restore-AzsBackup', '-Name', name, ...args], { stdin }), 'Restore-AzsBackup');
    expect(warningsIn(r).filter((w) => w.includes('was open in process'))).toEqual([]);
  });

  it('names each process that had a directory role file or a sqlite database open, and tells to restart it', async () => {
    const filesHolder = await holdOpen(path.join(d.files, 'cloud.json'));
    const dbHolder = await holdOpen(d.db);
    const { args, stdin } = d.decryptArgs();
    const r = expectOk(await d.cli(['Restore-AzsBackup', '-Name', name, ...args], { stdin }), 'Restore-AzsBackup');
    const warnings = warningsIn(r).filter((w) => w.includes('was open in process'));
    expect(warnings).toHaveLength(2);
    const files = warnings.find((w) => w.startsWith('Role Files:'))!;
    expect(files).toContain(`${filesHolder} (sleep)`);
    expect(files).toContain(`'${d.files}'`);
    expect(files).toMatch(/restart it now/);
    const db = warnings.find((w) => w.startsWith('Role Db:'))!;
    expect(db).toContain(`${dbHolder} (sleep)`);
    expect(db).not.toContain(String(filesHolder));
    expect(r.json.map((x: { Status: string }) => x.Status)).toEqual(['Succeeded', 'Succeeded', 'Succeeded']);
  });
});
