/**
 * The host as users run it: bundled like the build bundles it (one host, one file per cmdlet, the
 * compiled manifests beside them), started as a real `node` process through the bin entry.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { bundleOptions } from '../../scripts/bundle-options.mjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileManifests } from '../../src/manifest/load.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = join(root, 'test/fixtures/host');
const temp = mkdtempSync(join(tmpdir(), 'azs-host-e2e-'));
const bin = join(temp, 'bin', 'azsbackup.js');

beforeAll(async () => {
  const entryPoints: Record<string, string> = { 'host/main': join(root, 'src/host/main.ts') };
  for (const f of readdirSync(join(fixtures, 'cmdlets'))) entryPoints[`cmdlets/${f.replace(/\.ts$/, '')}`] = join(fixtures, 'cmdlets', f);
  await build({ ...bundleOptions(root, entryPoints, join(temp, 'dist')), logLevel: 'error' });
  compileManifests(join(fixtures, 'manifests'), join(temp, 'dist', 'manifests.json'));
  mkdirSync(join(temp, 'bin'));
  cpSync(join(root, 'bin', 'azsbackup.js'), bin);
});
afterAll(() => rmSync(temp, { recursive: true, force: true }));

interface Result {
  code: number | null;
  out: string;
  err: string;
}

function azs(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Result {
  const r = spawnSync(process.execPath, [bin, ...args], {
    input: opts.input ?? '',
    env: { PATH: process.env.PATH ?? '', AZSBACKUP_HOME: join(temp, 'home'), ...opts.env },
    encoding: 'utf8',
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('the built host', () => {
  test('exit 0 with JSON on stdout', () => {
    const r = azs(['get-testitem', 'abc', '-Tag', 'red']);
    expect(r.code, r.err).toBe(0);
    const obj = JSON.parse(r.out);
    expect(obj.ParameterSetName).toBe('ByName');
    expect(JSON.parse(obj.Json)).toEqual({ Name: 'abc', Tag: ['Red'] });
  });

  test('exit 2 with one JSON error record on stderr', () => {
    const r = azs(['Set-TestShare', '/srv', '-BackupFrequencyInHours', '99']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    const lines = r.err.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!).ErrorRecord).toMatchObject({
      ErrorId: 'ParameterArgumentValidationError',
      Category: 'InvalidArgument',
      TargetObject: 'BackupFrequencyInHours',
      ExitCode: 2,
      Terminating: true,
    });
  });

  test('exit 3 for a partial result: the object on stdout, a non-terminating record on stderr', () => {
    const r = azs(['Invoke-TestJob', 'partial']);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.out)).toMatchObject({ Name: 'partial' });
    expect(JSON.parse(r.err).ErrorRecord).toMatchObject({ ErrorId: 'RoleFailed', Terminating: false });
  });

  test('an AzsError thrown by a separately bundled cmdlet keeps its exit code', () => {
    const r = azs(['Invoke-TestJob', 'notfound']);
    expect(r.code).toBe(10);
    expect(JSON.parse(r.err).ErrorRecord.ErrorId).toBe('ShareNotFound');
  });

  test('a bug is exit 1 with "internal error" and the stack', () => {
    const r = azs(['Invoke-TestJob', 'crash']);
    expect(r.code).toBe(1);
    const rec = JSON.parse(r.err).ErrorRecord;
    expect(rec.Message).toBe('internal error: boom');
    expect(rec.ScriptStackTrace).toContain('TypeError: boom');
    expect(rec.RecommendedAction).toMatch(/please report this at/);
  });

  test('secrets from stdin in order, and never echoed when refused', () => {
    const ok = azs(['Invoke-TestJob', 'ok', '-Token', '-', '-Password', '-'], { input: 't0ken\np4ss\n' });
    expect(ok.code, ok.err).toBe(0);
    expect(JSON.parse(ok.out)[1].Name).toBe('p4ss|t0ken');
    const refused = azs(['Invoke-TestJob', 'ok', '-Password', 'p4ss']);
    expect(refused.code).toBe(2);
    expect(refused.err).not.toContain('p4ss');
    expect(JSON.parse(refused.err).ErrorRecord.ErrorId).toBe('SecretOnCommandLine');
  });

  test('the host exits once it has read its secrets, even if the caller keeps stdin open', async () => {
    const child = spawn(process.execPath, [bin, 'Invoke-TestJob', 'ok', '-Password', '-'], {
      env: { PATH: process.env.PATH ?? '', AZSBACKUP_HOME: join(temp, 'home') },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdin.write('pw\n');
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearTimeout(timer);
    child.stdin.destroy();
    expect(code).toBe(0);
    expect(JSON.parse(out)[1].Name).toBe('pw|');
  });

  test('the XML manifests and cmdlets folders can be pointed at by environment variables', () => {
    const r = azs(['Get-TestItem', '-Top', '2'], {
      env: { AZSBACKUP_MANIFESTS_DIR: join(fixtures, 'manifests'), AZSBACKUP_CMDLETS_DIR: join(temp, 'dist', 'cmdlets') },
    });
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(JSON.parse(r.out).Json)).toEqual({ Top: 2 });
  });

  test('SIGINT aborts the cmdlet and exits 130', async () => {
    const child = spawn(process.execPath, [bin, 'Invoke-TestJob', 'wait', '--progress', 'json'], {
      env: { PATH: process.env.PATH ?? '', AZSBACKUP_HOME: join(temp, 'home') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        // The cmdlet reports progress once it is waiting: then interrupt it.
        if (err.includes('"Progress"') && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(code).toBe(130);
    expect(err).toContain('"ErrorId":"PipelineStopped"');
  });
});
