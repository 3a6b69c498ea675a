import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, freshHome, makeDrill, type Drill } from '../support/cli.js';

/**
 * A folder written to while it is read: the archive would hold a file no one ever saw whole, so
 * the role fails as it stands ("file changed as we read it"), and the engine tries it again. The
 * test-only switch AZSBACKUP_TEST_APPEND_WHILE_READ makes the backup append a line to the big file
 * once its first piece was read: on the first attempt only, or on every attempt (one line each,
 * which counts the attempts).
 */

let d: Drill;
const big = () => path.join(d.files, 'live.log');

function appendWhileRead(changeOn: 'first run' | 'every run'): Record<string, string> {
  return { AZSBACKUP_TEST_APPEND_WHILE_READ: big(), AZSBACKUP_TEST_APPEND_TIMES: changeOn === 'every run' ? '100' : '1' };
}

const appendedLines = async () => (await fs.readFile(big(), 'latin1')).split('appended\n').length - 1;

describe('a directory role that changes while it is read', () => {
  beforeEach(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    await fs.writeFile(big(), randomBytes(8 << 20));
  });
  afterEach(async () => d?.cleanup());

  it('is tried again, and the backup holds the folder as it was when it stood still', async () => {
    const env = appendWhileRead('first run');
    const r = expectOk(await d.cli(['Start-InfrastructureBackup'], { env, timeoutMs: 120_000 }), 'Start-InfrastructureBackup');
    expect(r.json.Status).toBe('Succeeded');
    expect(r.json.RoleStatus).toMatchObject([{ RoleName: 'Files', Status: 'Succeeded', Error: null }]);
    expect(await appendedLines()).toBe(1);
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
    const env = appendWhileRead('every run');
    const r = await d.cli(['Start-InfrastructureBackup'], { env, timeoutMs: 120_000 });
    expect(r.code).toBe(1);
    expect(r.json.Status).toBe('Failed');
    expect(await appendedLines()).toBe(3);
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
