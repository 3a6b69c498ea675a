import { execFileSync } from 'node:child_process';
import { promises as fs, lstatSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { CLI, cliEnv, makeDrill, resultOf, shareFingerprint, type Drill } from '../support/cli.js';

/**
 * Who else may change the backups on a local folder share. A service manager or a container often
 * starts the service with umask 000; the share folder is reachable by other accounts (/srv/backups,
 * 0755, or a mount). Defect this pinned: folders were made 0777 and files 0666, less the umask, so
 * under umask 000 every backup folder, BackupInfo.xml, catalog, pack and index file was world
 * writable, and any local account could truncate a pack or delete a backup. Now nothing made on the
 * share is ever writable by others; the group's bits follow the umask, for operators who share a
 * mount with a group (docs/OPERATIONS.md, "Who may change the backups").
 */

const isRoot = process.getuid?.() === 0;

/** Every entry under `root` (itself excluded), with its permission bits. */
function modesUnder(root: string): { rel: string; dir: boolean; mode: number }[] {
  const out: { rel: string; dir: boolean; mode: number }[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      const st = lstatSync(p);
      out.push({ rel: path.relative(root, p), dir: st.isDirectory(), mode: st.mode & 0o7777 });
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

/** A backup run by a service started with `umask`. */
async function backupUnder(d: Drill, umask: string, env: Record<string, string>) {
  const r = await execa(
    'sh',
    ['-c', `umask ${umask}; exec "$@"`, 'sh', process.execPath, CLI, 'Start-InfrastructureBackup', '--output', 'json'],
    {
      env: cliEnv(d.home, env),
      extendEnv: false,
      input: '',
      reject: false,
      timeout: 60_000,
    },
  );
  const result = resultOf(r.exitCode ?? -1, String(r.stdout), String(r.stderr));
  expect(result.code, result.stderr).toBe(0);
}

/** Runs `command` as the account nobody; whether it succeeded. */
function asNobody(command: string[]): boolean {
  try {
    execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', ...command], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.each<{ addons: string; env: Record<string, string> }>([
  { addons: 'with our addons', env: {} },
  { addons: 'without them (AZSBACKUP_NATIVE=off)', env: { AZSBACKUP_NATIVE: 'off' } },
])('modes of what a backup makes on a local folder share, $addons', ({ env }) => {
  let d: Drill | undefined;
  afterEach(async () => {
    await d?.cleanup();
    d = undefined;
  });

  async function drillWithFiles(): Promise<Drill> {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    // The share is reachable by every account, as /srv/backups is.
    await fs.chmod(d.root, 0o755);
    return d;
  }

  it.skipIf(!isRoot)('under umask 000 another local account can neither truncate a pack nor delete or add to a backup', async () => {
    const d = await drillWithFiles();
    await backupUnder(d, '000', env);

    const made = modesUnder(d.share);
    const before = shareFingerprint(d.share);
    const backups = path.join(d.share, 'MASBackup');
    const stamp = path.join(backups, readdirSync(backups)[0]!);
    const pack = made.find((e) => e.rel.endsWith('.pack'))?.rel ?? 'no pack was made';
    expect(asNobody(['truncate', '-s', '0', path.join(d.share, pack)])).toBe(false);
    expect(asNobody(['rm', '-rf', path.join(stamp, readdirSync(stamp)[0]!)])).toBe(false);
    expect(asNobody(['touch', path.join(stamp, 'planted')])).toBe(false);
    expect(asNobody(['rm', '-rf', path.join(d.share, 'AzsRepository', 'index')])).toBe(false);
    expect(shareFingerprint(d.share)).toBe(before);
    expect(made.filter((e) => e.mode & 0o002).map((e) => `${e.rel} ${e.mode.toString(8)}`)).toEqual([]);
  });

  it('under umask 002 the group keeps write access (a mount shared with a group); others read only', async () => {
    const d = await drillWithFiles();
    await backupUnder(d, '002', env);
    const made = modesUnder(d.share);
    expect(made.length).toBeGreaterThan(0);
    for (const e of made) expect(`${e.rel} ${e.mode.toString(8)}`).toBe(`${e.rel} ${e.dir ? '775' : '664'}`);
  });

  it('under umask 027 nothing is more open than the umask allows', async () => {
    const d = await drillWithFiles();
    await backupUnder(d, '027', env);
    for (const e of modesUnder(d.share)) expect(`${e.rel} ${e.mode.toString(8)}`).toBe(`${e.rel} ${e.dir ? '750' : '640'}`);
  });
});
