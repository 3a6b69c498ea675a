import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, expectOk, makeDrill, parseErrors, type Drill } from '../support/cli.js';

/**
 * A reader that goes away before the command has said everything: `azsbackup ... | head -1`, a
 * log collector that restarts, `2>&1 | head` on a verbose backup. Its pipe's writes then fail with
 * EPIPE. Defect this pinned: that failure was an unhandled 'error' event, so the command died with
 * Node's stack trace (exit 1); a backup whose verbose lines went to a closed pipe died at its first
 * line, the job interrupted and the job lock left behind. Standard output on a full disk died the
 * same way, where it must say that the output is incomplete.
 */

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whatever of stdout and stderr was not closed. */
  kept: string;
}

/** Runs the CLI with `closed` ('stdout' or 'stderr') a pipe whose reader has gone; the other is read. */
function runWithClosed(home: string, args: string[], closed: 'stdout' | 'stderr'): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: cliEnv(home), stdio: ['ignore', 'pipe', 'pipe'] });
    // The reading end is closed before the command has started, as `| true` would.
    child[closed].destroy();
    const open = closed === 'stdout' ? child.stderr : child.stdout;
    let kept = '';
    open.setEncoding('utf8').on('data', (t: string) => (kept += t));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, kept }));
  });
}

let d: Drill;
beforeAll(async () => {
  d = await makeDrill({ roles: false });
  await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
  await d.backup();
});
afterAll(async () => d?.cleanup());

describe('standard output or error closed by its reader', () => {
  it('Get-InfrastructureBackup | (a reader gone): exit 0, no stack trace', async () => {
    const r = await runWithClosed(d.home, ['Get-InfrastructureBackup', '--output', 'table'], 'stdout');
    expect(r.kept).not.toMatch(/EPIPE|Unhandled 'error' event|^\s+at /m);
    expect(r.code, r.kept).toBe(0);
  });

  it('the cmdlet list (azsbackup --help | ...): exit 0, no stack trace', async () => {
    const r = await runWithClosed(d.home, ['--help'], 'stdout');
    expect(r.kept).not.toMatch(/EPIPE|Unhandled 'error' event|^\s+at /m);
    expect(r.code, r.kept).toBe(0);
  });

  it('standard output on a full disk (/dev/full): the error said, exit 14, no stack trace', async () => {
    const out = await fs.open('/dev/full', 'w');
    try {
      const r = await new Promise<Ended>((resolve, reject) => {
        const child = spawn(process.execPath, [CLI, 'Get-InfrastructureBackup', '--output', 'json'], {
          env: cliEnv(d.home),
          stdio: ['ignore', out.fd, 'pipe'],
        });
        let kept = '';
        child.stderr!.setEncoding('utf8').on('data', (t: string) => (kept += t));
        child.on('error', reject);
        child.on('close', (code, signal) => resolve({ code, signal, kept }));
      });
      expect(r.kept).not.toMatch(/Unhandled 'error' event|^\s+at /m);
      expect(parseErrors(r.kept).map((e) => e.ErrorId)).toEqual(['InsufficientSpace']);
      expect(r.code, r.kept).toBe(14);
    } finally {
      await out.close();
    }
  });

  it('a verbose backup whose stderr reader went away completes: committed, Succeeded, the lock free', async () => {
    const r = await runWithClosed(d.home, ['Start-InfrastructureBackup', '-Verbose', '--output', 'json'], 'stderr');
    expect(r.code, r.kept).toBe(0);
    const made = JSON.parse(r.kept) as { Name: string; Status: string };
    expect(made.Status).toBe('Succeeded');
    await expect(fs.access(path.join(d.home, 'job.lock'))).rejects.toThrow();
    const listed = [expectOk(await d.cli(['Get-InfrastructureBackup', '-Name', made.Name])).json].flat();
    expect(listed.map((b) => b.Status)).toEqual(['Succeeded']);
    await fs.access(await d.backupFolder(made.Name));
  });
});
