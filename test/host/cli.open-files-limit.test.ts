import { execa } from 'execa';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, expectOk, makeDrill, resultOf, type Drill } from '../support/cli.js';

/**
 * Commands under a small limit on open files (a service's LimitNOFILE=, a container's nofile
 * ulimit): Node raises its soft limit to the hard one, so only a low hard limit is felt. Defect
 * this pinned: a command that could not open the next part of its own code (EMFILE) failed as
 * "internal error: EMFILE: too many open files ... This is a bug in AzsBackup", with Node's stack.
 * And a directory role deeper than the limit allows (its walk holds a folder open a level) failed
 * advising to "fix the cause named in the message (permissions, a disk error)".
 */

/** Limits Node starts under (below about 28 it aborts) but a backup, loading its parts, outgrows (about 55). */
const LIMITS = [32, 40, 48];

describe('a command under a small limit on open files', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill();
  });
  afterAll(() => d?.cleanup());

  it.each(LIMITS)('nofile %i: fails saying the limit is reached and how to raise it, or works', async (n) => {
    const r = await execa('prlimit', [`--nofile=${n}`, process.execPath, CLI, 'Start-InfrastructureBackup', '--output', 'json'], {
      env: cliEnv(d.home),
      extendEnv: false,
      reject: false,
      timeout: 60_000,
    });
    const result = resultOf(r.exitCode ?? -1, String(r.stdout), String(r.stderr));
    if (result.code === 0) return;
    expect(
      result.errors.map((e) => e.ErrorId),
      result.stderr,
    ).toEqual(['TooManyOpenFiles']);
    expect(result.errors[0]!.RecommendedAction).toMatch(/ulimit -n/);
    expect(result.errors[0]!.RecommendedAction).toMatch(/LimitNOFILE/);
  });
});

describe('a directory role deeper than a small limit on open files allows', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    let deep = d.files;
    for (let i = 1; i <= 120; i++) deep = path.join(deep, `d${i}`);
    await fs.mkdir(deep, { recursive: true });
    await fs.writeFile(path.join(deep, 'leaf.txt'), 'deep');
    expectOk(await d.cli(['Register-InfrastructureRole', '-Name', 'Deep', '-Provider', 'directory', '-Path', d.files]));
  });
  afterAll(() => d?.cleanup());

  it('fails advising to raise the limit on open files', async () => {
    const r = await execa('prlimit', ['--nofile=100', process.execPath, CLI, 'Start-InfrastructureBackup', '--output', 'json'], {
      env: cliEnv(d.home),
      extendEnv: false,
      reject: false,
      timeout: 60_000,
    });
    const result = resultOf(r.exitCode ?? -1, String(r.stdout), String(r.stderr));
    expect(result.code, result.stderr).not.toBe(0);
    const record = result.errors.find((e) => e.TargetObject === 'Deep');
    expect(record, result.stderr).toBeDefined();
    expect(record!.Message).toMatch(/Too many open files/);
    expect(record!.RecommendedAction).toMatch(/ulimit -n/);
  });
});
