import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectOk, runCli, type CliResult } from '../support/cli.js';

/**
 * Who else may change AZSBACKUP_HOME. It holds the sealing key, the sealed share password and
 * encryption key, the role catalog (the commands a backup runs), job records and the files cache:
 * whoever may put a file there, or put another folder in its place, steers what this account does
 * and may read what it seals. Defect this pinned: the home was only made 0700, never checked, so a
 * root service whose home another account had made (or whose home lay in a folder others may write)
 * sealed its secrets with a key that account planted and read a configuration it planted.
 */

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** Runs `script` (sh) as the account nobody; throws when it fails. */
function asNobody(script: string): void {
  execFileSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', 'sh', '-euc', script], {
    stdio: 'pipe',
  });
}

const errorIds = (r: CliResult) => r.errors.map((e) => e.ErrorId);

describe.skipIf(!isRoot)('an AZSBACKUP_HOME another account could change', () => {
  let root: string;
  let share: string;
  let key: string;

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(tmpdir(), 'azsbackup-home-owner-'));
    // Reachable by every account, as /var/lib is.
    await fs.chmod(root, 0o755);
    share = path.join(root, 'share');
    await fs.mkdir(share);
    key = expectOk(await runCli(path.join(root, 'unused-home'), ['New-EncryptionKey'])).json.Key;
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  const setShare = (home: string) => runCli(home, ['Set-BackupShare', '-Path', share, '-EncryptionKey', '-'], { stdin: `${key}\n` });

  /** A folder every account may add to, as /tmp: another may make the home there first. */
  async function sharedTmp(): Promise<string> {
    const tmp = path.join(root, 'tmp');
    await fs.mkdir(tmp);
    await fs.chmod(tmp, 0o1777);
    return tmp;
  }

  it('a home made by another account, holding a sealing key it chose, is refused and nothing is sealed with that key', async () => {
    const home = path.join(await sharedTmp(), 'azsbackup');
    const planted = randomBytes(32).toString('base64');
    asNobody(`mkdir -m 0755 '${home}' && printf '%s' '${planted}' > '${home}/seal.key'`);

    const r = await setShare(home);
    expect(errorIds(r), r.stderr).toEqual(['HomeNotOwned']);
    expect(r.code).toBe(1);
    expect(r.errors[0]!.Message).toContain(`uid ${NOBODY}`);
    expect(r.errors[0]!.RecommendedAction).toMatch(/chown/);
    expect(existsSync(path.join(home, 'config.json'))).toBe(false);
  });

  it('a configuration planted in a home another account owns is never read', async () => {
    const home = path.join(await sharedTmp(), 'azsbackup');
    asNobody(`mkdir -m 0700 '${home}' && printf '%s' '{"share":{"path":"/attacker"},"roles":[]}' > '${home}/config.json'`);
    const r = await runCli(home, ['Get-BackupConfiguration']);
    expect(errorIds(r), r.stdout).toEqual(['HomeNotOwned']);
    expect(r.stdout).not.toContain('/attacker');
  });

  it('a home of ours that others could write, holding files, is refused; an empty one is made owner-only', async () => {
    const home = path.join(root, 'home');
    await fs.mkdir(home);
    await fs.chmod(home, 0o777);
    asNobody(`printf '%s' '${randomBytes(32).toString('base64')}' > '${home}/seal.key'`);
    const r = await setShare(home);
    expect(errorIds(r), r.stderr).toEqual(['HomeNotPrivate']);
    expect(existsSync(path.join(home, 'config.json'))).toBe(false);

    const empty = path.join(root, 'empty-home');
    await fs.mkdir(empty);
    await fs.chmod(empty, 0o777);
    expectOk(await setShare(empty));
    expect((await fs.stat(empty)).mode & 0o777).toBe(0o700);
  });

  describe('a home in a folder another account may change', () => {
    let home: string;
    let parent: string;
    beforeEach(async () => {
      parent = path.join(root, 'srv');
      home = path.join(parent, 'azsbackup');
      await fs.mkdir(parent);
      expectOk(await setShare(home));
    });

    it('writable by others without the sticky bit: refused, naming the folder; the remedy mends it, nothing lost', async () => {
      await fs.chmod(parent, 0o777);
      const r = await runCli(home, ['Get-BackupConfiguration']);
      expect(errorIds(r), r.stderr).toEqual(['HomeParentUnsafe']);
      expect(r.code).toBe(1);
      expect(r.errors[0]!.Message).toContain(parent);
      expect(r.errors[0]!.RecommendedAction).toMatch(/chmod/);
      // What it stops: nobody could move the home aside and put a folder of its own in its place.
      asNobody(`mv '${home}' '${home}.aside'`);
      await fs.rename(`${home}.aside`, home);

      await fs.chmod(parent, 0o755);
      expect(expectOk(await runCli(home, ['Get-BackupConfiguration'])).json.Path).toBe(share);
    });

    it('owned by another account: refused; a link to the home in such a folder too', async () => {
      await fs.chown(parent, NOBODY, NOBODY);
      expect(errorIds(await runCli(home, ['Get-BackupConfiguration']))).toEqual(['HomeParentUnsafe']);

      await fs.chown(parent, 0, 0);
      const theirs = path.join(root, 'theirs');
      await fs.mkdir(theirs);
      await fs.chown(theirs, NOBODY, NOBODY);
      await fs.symlink(home, path.join(theirs, 'link'));
      expect(errorIds(await runCli(path.join(theirs, 'link'), ['Get-BackupConfiguration']))).toEqual(['HomeParentUnsafe']);
    });

    it('writable by all with the sticky bit (as /tmp): accepted, others cannot move the home', async () => {
      await fs.chmod(parent, 0o1777);
      expect(expectOk(await runCli(home, ['Get-BackupConfiguration'])).json.Path).toBe(share);
    });
  });
});
