import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileWhole } from '../../src/fs/durable-write.js';

const scratch = mkdtempSync(join(tmpdir(), 'azs-durable-write-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let n = 0;
const freshDir = () => {
  const dir = join(scratch, `case-${++n}`);
  mkdirSync(dir);
  return dir;
};

describe('writeFileWhole', () => {
  it('creates the file with its mode and leaves no temporary file', () => {
    const dir = freshDir();
    writeFileWhole(join(dir, 'seal.key'), 'secret', { mode: 0o600, replace: false });
    expect(readFileSync(join(dir, 'seal.key'), 'utf8')).toBe('secret');
    expect(statSync(join(dir, 'seal.key')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['seal.key']);
  });

  it('without replace, refuses an existing name with EEXIST and leaves that file as it was', () => {
    const dir = freshDir();
    writeFileSync(join(dir, 'backup.key'), 'first');
    expect(() => writeFileWhole(join(dir, 'backup.key'), 'second', { mode: 0o600, replace: false })).toThrow(
      expect.objectContaining({ code: 'EEXIST' }),
    );
    expect(readFileSync(join(dir, 'backup.key'), 'utf8')).toBe('first');
    expect(readdirSync(dir)).toEqual(['backup.key']);
  });

  it('with replace, replaces a file, and a symbolic link without following it; the new mode is its own', () => {
    const dir = freshDir();
    writeFileSync(join(dir, 'alerts.json'), 'old', { mode: 0o666 });
    writeFileWhole(join(dir, 'alerts.json'), 'new', { mode: 0o600, replace: true });
    expect(readFileSync(join(dir, 'alerts.json'), 'utf8')).toBe('new');
    expect(statSync(join(dir, 'alerts.json')).mode & 0o777).toBe(0o600);
    writeFileSync(join(dir, 'victim'), 'not yours');
    symlinkSync(join(dir, 'victim'), join(dir, 'link.pfx'));
    writeFileWhole(join(dir, 'link.pfx'), 'pfx', { mode: 0o600, replace: true, durable: false });
    expect(lstatSync(join(dir, 'link.pfx')).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(dir, 'victim'), 'utf8')).toBe('not yours');
    expect(readdirSync(dir).sort()).toEqual(['alerts.json', 'link.pfx', 'victim']);
  });

  it('throws when the folder is missing, and writes nothing', () => {
    const dir = freshDir();
    expect(() => writeFileWhole(join(dir, 'no', 'file'), 'x', { mode: 0o600, replace: true })).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
    expect(readdirSync(dir)).toEqual([]);
  });
});

const hasStrace = spawnSync('strace', ['-V']).status === 0;

/**
 * The order of the system calls is the guarantee (data fsynced before the name points at it, the
 * folder fsynced after), so a real process is traced: a small script bundled from the source.
 */
describe.skipIf(!hasStrace)('writeFileWhole and syncDirectory, as strace sees them', () => {
  it('fsyncs the data, renames or links it into place, then fsyncs the folder; durable: false does neither fsync', async () => {
    const dir = freshDir();
    mkdirSync(join(dir, 'sub'));
    const script = join(scratch, 'trace-me.ts');
    const source = fileURLToPath(new URL('../../src/fs/durable-write.ts', import.meta.url));
    writeFileSync(
      script,
      [
        `import { syncDirectory, writeFileWhole } from ${JSON.stringify(source)};`,
        'const dir = process.argv[2];',
        "writeFileWhole(`${dir}/replaced`, 'one', { mode: 0o600, replace: true });",
        "writeFileWhole(`${dir}/linked`, 'two', { mode: 0o600, replace: false });",
        "writeFileWhole(`${dir}/atomic-only`, 'three', { mode: 0o600, replace: true, durable: false });",
        'await syncDirectory(`${dir}/sub`);',
      ].join('\n'),
    );
    const bundle = join(scratch, 'trace-me.mjs');
    await build({ entryPoints: [script], outfile: bundle, bundle: true, platform: 'node', format: 'esm', logLevel: 'silent' });
    const log = join(scratch, 'strace.log');
    execFileSync('strace', [
      '-f',
      '-qq',
      '-y',
      '-o',
      log,
      '-e',
      'trace=openat,fsync,fdatasync,rename,renameat,renameat2,link,linkat',
      process.execPath,
      bundle,
      dir,
    ]);
    expect(syscallsIn(readFileSync(log, 'utf8'), dir)).toEqual([
      'create .replaced.tmp',
      'fsync .replaced.tmp',
      'rename .replaced.tmp -> replaced',
      'open .',
      'fsync .',
      'create .linked.tmp',
      'fsync .linked.tmp',
      'link .linked.tmp -> linked',
      'open .',
      'fsync .',
      'create .atomic-only.tmp',
      'rename .atomic-only.tmp -> atomic-only',
      'open sub',
      'fsync sub',
    ]);
    expect(readdirSync(dir).sort()).toEqual(['atomic-only', 'linked', 'replaced', 'sub']);
  });
});

/** The traced calls that touch `dir`, in order, with paths relative to it and temporary names without their random part. */
function syscallsIn(log: string, dir: string): string[] {
  const name = (p: string) => {
    const rel = p === dir ? '.' : p.startsWith(`${dir}/`) ? p.slice(dir.length + 1) : undefined;
    return rel?.replace(/^(\..+)\.\d+\.[0-9a-f]+\.tmp$/, '$1.tmp');
  };
  const out: string[] = [];
  for (const line of log.split('\n')) {
    const m = /^(?:\d+\s+)?(\w+)\((.*)\)\s+=\s+\d+/.exec(line);
    if (!m) continue;
    const [, call, args] = m as unknown as [string, string, string];
    const paths = [...args.matchAll(/"([^"]*)"|<([^>]*)>/g)].map((p) => name(p[1] ?? p[2]!));
    if (paths.every((p) => p === undefined)) continue;
    const [a, b] = paths.filter((p) => p !== undefined) as string[];
    if (call === 'openat') out.push(`${args.includes('O_CREAT') ? 'create' : 'open'} ${a}`);
    else if (call.startsWith('rename')) out.push(`rename ${a} -> ${b}`);
    else if (call.startsWith('link')) out.push(`link ${a} -> ${b}`);
    else out.push(`${call} ${a}`);
  }
  return out;
}
