import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CliOptions, type CliResult, cliEnv, resultOf } from './cli.js';

/**
 * Older AzsBackup builds, made from this repository's own history, for the upgrade tests: what an
 * operator's share and AZSBACKUP_HOME hold when the current build meets them. The commits are the
 * last of main before a change of what lands on the share or in the home; every upgrade test
 * takes them from here.
 */
export const OLD_VERSIONS = {
  /** The last version whose backups were full copies (format 2), its config.json written by the `conf` package. */
  fullCopies: '327d7b354a1db57bc88c0b983882d313bb3c834d',
  /** Format 3 with files cache version 1, before folder-stat and durable-write. */
  filesCacheV1: '7b543fe019d956a2e0f330c6f650bd5b7e6f20f5',
  /** Format 3 whose config.xml carries no WrapsMac, and archives without extended attributes. */
  beforeWrapsMac: 'e6b4054f8bc840a15e3926da2ceabee34994681b',
} as const;

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const cacheRoot = path.join(os.tmpdir(), 'azsbackup-old-builds');

/** Why the old builds cannot be made here (a shallow clone, an export without .git), or undefined. */
export function oldHistoryMissing(): string | undefined {
  for (const commit of Object.values(OLD_VERSIONS)) {
    try {
      execFileSync('git', ['-C', repoRoot, 'cat-file', '-e', `${commit}^{commit}`], { stdio: 'ignore' });
    } catch {
      return `commit ${commit.slice(0, 12)} is not in this clone's history (shallow or no .git): the upgrade tests build old versions from it`;
    }
  }
  return undefined;
}

export interface OldBuild {
  commit: string;
  dir: string;
  cli(home: string, args: string[], opts?: CliOptions): Promise<CliResult>;
}

/**
 * Builds the version of `commit` once per machine (kept under the temporary folder by commit id):
 * its tree from `git archive`, this checkout's node_modules linked in (a package an old version
 * needed that this one dropped is among its devDependencies), `npm run build`'s script, and its
 * addons compiled when a compiler is there (it runs without them otherwise).
 */
export async function oldBuild(commit: string): Promise<OldBuild> {
  const dir = path.join(cacheRoot, commit);
  if (!existsSync(path.join(dir, '.built'))) await build(commit, dir);
  return {
    commit,
    dir,
    async cli(home, args, opts = {}) {
      const { execa } = await import('execa');
      const r = await execa(process.execPath, [path.join(dir, 'bin/azsbackup.js'), ...args, '--output', 'json'], {
        env: cliEnv(home, opts.env),
        extendEnv: false,
        input: opts.stdin ?? '',
        reject: false,
        timeout: opts.timeoutMs ?? 60_000,
      });
      return resultOf(r.exitCode ?? -1, String(r.stdout), String(r.stderr));
    },
  };
}

async function build(commit: string, dir: string): Promise<void> {
  await fs.mkdir(cacheRoot, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(path.join(tmp, 'node_modules'), { recursive: true });
  execFileSync('sh', ['-c', `git -C "$1" archive "$2" | tar -x -C "$3"`, 'sh', repoRoot, commit, tmp]);

  const modules = path.join(repoRoot, 'node_modules');
  for (const name of readdirSync(modules)) await fs.symlink(path.join(modules, name), path.join(tmp, 'node_modules', name));
  const { dependencies = {} } = JSON.parse(readFileSync(path.join(tmp, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  // Never from the network (tests reach loopback only): a package an old version needs and this one
  // dropped is a devDependency here (conf, for the versions before durable-write).
  const dropped = Object.keys(dependencies).filter((name) => !existsSync(path.join(modules, name)));
  if (dropped.length)
    throw new Error(
      `the version of ${commit.slice(0, 12)} needs ${dropped.join(', ')}, which node_modules lacks: add it to devDependencies`,
    );
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: tmp, stdio: 'ignore' });
  compileAddons(tmp);
  await fs.writeFile(path.join(tmp, '.built'), `${commit}\n`);
  await fs.rename(tmp, dir).catch(async (e: NodeJS.ErrnoException) => {
    // Another test file built it meanwhile: theirs is as good.
    if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
    await fs.rm(tmp, { recursive: true, force: true });
  });
}

/** The old version's addons, with npm's node-gyp and the headers of this node when installed; without them it runs slower. */
function compileAddons(dir: string): void {
  const prefix = path.dirname(path.dirname(process.execPath));
  const gyp = path.join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  if (!existsSync(gyp)) return;
  const headers = existsSync(path.join(prefix, 'include/node/node_api.h')) ? [`--nodedir=${prefix}`] : [];
  try {
    execFileSync(process.execPath, [gyp, 'rebuild', ...headers, '--directory=src/native'], { cwd: dir, stdio: 'ignore' });
  } catch {
    /* the old version falls back to JavaScript */
  }
}
