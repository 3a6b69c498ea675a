import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * Start-up cost is measured by benchmarks (README: hyperfine against `node -e 0`). What the tests
 * hold is the design behind it: a call loads its own cmdlet bundle and the packages that cmdlet
 * needs, never the heavy ones another command needs.
 */

const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'bin', 'azsbackup.js');
const temp = mkdtempSync(path.join(tmpdir(), 'azs-startup-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** Which packages esbuild put into each output file (the build writes dist/metafile.json). */
function packagesByOutput(): Map<string, string[]> {
  const meta = JSON.parse(readFileSync(path.join(root, 'dist', 'metafile.json'), 'utf8')) as {
    outputs: Record<string, { inputs: Record<string, unknown> }>;
  };
  return new Map(
    Object.entries(meta.outputs).map(([out, { inputs }]) => [
      path.join(root, out),
      [
        ...new Set(
          Object.keys(inputs)
            .map((i) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(i)?.[1])
            .filter((p): p is string => p !== undefined),
        ),
      ],
    ]),
  );
}

function loadedBy(args: string[]): { packages: Set<string>; cmdlets: string[] } {
  const trace = path.join(temp, `trace-${args[0]}.txt`);
  execFileSync(process.execPath, ['--import', path.join(root, 'test/fixtures/startup/load-trace.mjs'), cli, ...args, '--output', 'json'], {
    env: { PATH: process.env.PATH ?? '', AZSBACKUP_HOME: path.join(temp, 'home'), AZS_LOAD_TRACE: trace },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const loaded = readFileSync(trace, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => decodeURIComponent(l.replace(/^file:\/\//, '')));
  const bundled = packagesByOutput();
  // Packages come bundled into dist chunks, or from node_modules when they are native addons.
  const packages = new Set([
    ...loaded.flatMap((l) => bundled.get(l) ?? []),
    ...loaded.map((l) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(l)?.[1]).filter((p): p is string => p !== undefined),
  ]);
  const cmdlets = [...new Set(loaded.filter((l) => l.includes('/dist/cmdlets/')).map((l) => path.basename(l, '.js')))];
  return { packages, cmdlets };
}

const HEAVY = ['conf', 'ajv', 'execa', 'node-forge', 'tar', 'better-sqlite3', 'zstd-napi', 'fast-xml-parser', 'yargs'];

describe('what a call loads', () => {
  it('Get-BackupConfiguration loads only its own cmdlet and none of the heavy packages', () => {
    const { packages, cmdlets } = loadedBy(['Get-BackupConfiguration']);
    expect(cmdlets).toEqual(['Get-BackupConfiguration']);
    expect(HEAVY.filter((p) => packages.has(p))).toEqual([]);
  });

  it('New-EncryptionKey loads its cmdlet and nothing for shares, providers or certificates', () => {
    const { packages, cmdlets } = loadedBy(['New-EncryptionKey']);
    expect(cmdlets).toEqual(['New-EncryptionKey']);
    expect(HEAVY.filter((p) => packages.has(p))).toEqual([]);
  });

  it('a command that writes the configuration loads no package to write it; the trace does see the packages it loads', () => {
    const { packages, cmdlets } = loadedBy(['Register-InfrastructureRole', '-Name', 'Etc', '-Provider', 'directory', '-Path', temp]);
    expect(cmdlets).toEqual(['Register-InfrastructureRole']);
    // config.json is written whole by src/fs/durable-write.ts: conf and its schema validator (ajv,
    // 420 KB of code to compile) cost every backup 20-30 ms for one small write.
    expect(packages.has('conf')).toBe(false);
    expect(packages.has('ajv')).toBe(false);
    // So that the checks above are not vacuous: every command line is parsed by yargs-parser.
    expect(packages.has('yargs-parser')).toBe(true);
  });
});
