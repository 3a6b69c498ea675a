import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, freshHome, makeDrill, type Drill } from '../support/cli.js';

/**
 * A folder written to while GNU tar reads it: tar says "file changed as we read it" and exits 1.
 * The archive would hold a file no one ever saw whole, so the role fails as it stands, and the
 * engine tries it again. A wrapper first on PATH runs the real tar with a checkpoint action that
 * appends to the big file mid-read: on the first run only, or on every run.
 */

let d: Drill;
let bin: string;
let runs: string;
const big = () => path.join(d.files, 'live.log');

async function wrapTar(changeOn: 'first run' | 'every run'): Promise<Record<string, string>> {
  bin = path.join(d.root, 'tar-bin');
  runs = path.join(d.root, 'tar-runs.log');
  await fs.mkdir(bin, { recursive: true });
  // Only archiving runs (-cf) are counted and changed; extraction goes straight to the real tar.
  await fs.writeFile(
    path.join(bin, 'tar'),
    [
      '#!/bin/sh',
      'case " $* " in *" -cf "*) ;; *) exec /usr/bin/tar "$@";; esac',
      `echo create >> '${runs}'`,
      `if [ ${changeOn === 'every run' ? 1 : `"$(grep -c create '${runs}')"`} = 1 ]; then`,
      `  exec /usr/bin/tar --checkpoint=64 "--checkpoint-action=exec=echo appended >> '${big()}'" "$@"`,
      'fi',
      'exec /usr/bin/tar "$@"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return { PATH: `${bin}:${process.env.PATH}` };
}

const tarRuns = async () => (await fs.readFile(runs, 'utf8')).trim().split('\n').length;

describe('a directory role that changes while it is read', () => {
  beforeEach(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    await fs.writeFile(big(), randomBytes(8 << 20));
  });
  afterEach(async () => d?.cleanup());

  it('is tried again, and the backup holds the folder as it was when it stood still', async () => {
    const env = await wrapTar('first run');
    const r = expectOk(await d.cli(['Start-InfrastructureBackup'], { env, timeoutMs: 120_000 }), 'Start-InfrastructureBackup');
    expect(r.json.Status).toBe('Succeeded');
    expect(r.json.RoleStatus).toMatchObject([{ RoleName: 'Files', Status: 'Succeeded', Error: null }]);
    expect(await tarRuns()).toBe(2);
    expect((await fs.readFile(big(), 'utf8')).endsWith('appended\n')).toBe(true);

    // Restored on a fresh machine: exactly the folder as it is now, the appended lines included.
    const expected = fingerprint(d.files);
    await fs.rm(d.files, { recursive: true, force: true });
    const { args, stdin } = d.decryptArgs();
    const restored = await d.cli(['Restore-AzsBackup', '-Name', r.json.Name, '-Path', d.share, ...args], {
      stdin,
      env: { AZSBACKUP_HOME: await freshHome(d) },
    });
    expect(restored.code, restored.stderr).toBe(0);
    expect(fingerprint(d.files)).toBe(expected);
  });

  it('fails after three attempts with a message that names the file and says what to do', async () => {
    const env = await wrapTar('every run');
    const r = await d.cli(['Start-InfrastructureBackup'], { env, timeoutMs: 120_000 });
    expect(r.code).toBe(1);
    expect(r.json.Status).toBe('Failed');
    expect(await tarRuns()).toBe(3);
    const error = r.errors.find((e) => e.ErrorId === 'RoleBackupFailed');
    expect(error?.Message).toMatch(
      /changed while they were read, so the copy would not be consistent: \.\/live\.log: file changed as we read it\.$/,
    );
    expect(r.json.RoleStatus[0].Error).toMatch(/live\.log/);
    // Only the job's history lists it, as Failed; no attempt left anything on the share.
    const listed = [expectOk(await d.cli(['Get-InfrastructureBackup'])).json ?? []].flat();
    expect(listed.map((b) => [b.Name, b.Status, b.IsCloudRecoveryReady])).toEqual([[r.json.Name, 'Failed', false]]);
    expect(await fs.readdir(path.join(d.share, 'MASBackup')).catch(() => [])).toEqual([]);
  });
});
