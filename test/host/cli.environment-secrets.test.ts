import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, runCli } from '../support/cli.js';

/**
 * A blob container's secret left in AZSBACKUP_SASTOKEN or AZSBACKUP_STORAGEACCOUNTKEY (exported
 * for a restore from a container, say, as OPERATIONS.md shows) while the share is an SMB share or
 * a local folder. SPEC 8 lets the variable supply the secret where it is wanted; an unused one is
 * left alone, as AZSBACKUP_PASSWORD without -UserName is. Defects these pinned:
 * - Set-BackupShare -BackupFrequencyInHours on a configured SMB share took the token for the
 *   share's new credential: with -SkipValidation it replaced the stored account and password (every
 *   later backup failed), without it the change was refused as 'needs a credential, and none was
 *   given'; on a local folder the token was sealed into config.json.
 * - Get-InfrastructureBackup (and every cmdlet that reads the share) failed on the configured SMB
 *   share as ShareCredentialMissing (exit 2), though its credential is stored; with -Credential
 *   or -UserName it failed as CredentialConflict, naming -UserName, which was right.
 * Loopback only: the SMB share is a closed port, so a command that reaches for it fails as
 * ShareUnreachable (exit 10), which is what the stored credential leads to.
 */

const smbShare = 'smb://127.0.0.1:9/backups';
const userName = 'CONTOSO\\backup';
const leftOver = { AZSBACKUP_SASTOKEN: 'sv=2024-01-01&sp=rl&sig=bGVmdA', AZSBACKUP_STORAGEACCOUNTKEY: 'a2V5' };

let root = '';
let key = '';

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-env-secrets-'));
  key = expectOk(await runCli(path.join(root, 'keygen'), ['New-EncryptionKey'])).json.Key;
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** A home configured for the SMB share with its account, validation skipped (nothing listens). */
async function smbHome(name: string): Promise<string> {
  const home = path.join(root, name);
  expectOk(
    await runCli(
      home,
      ['Set-BackupShare', '-Path', smbShare, '-UserName', userName, '-Password', '-', '-EncryptionKey', '-', '-SkipValidation'],
      {
        stdin: `share-password\n${key}\n`,
      },
    ),
  );
  return home;
}

async function storedShare(home: string): Promise<Record<string, unknown>> {
  return JSON.parse(await fs.readFile(path.join(home, 'config.json'), 'utf8')).share;
}

describe.each(Object.entries(leftOver))('%s left in the environment', (variable, value) => {
  const env = { [variable]: value };

  it('does not replace the stored account of the configured SMB share when only the schedule changes', async () => {
    const home = await smbHome(`schedule-${variable}`);
    const before = await storedShare(home);
    const r = await runCli(home, ['Set-BackupShare', '-BackupFrequencyInHours', '6', '-SkipValidation'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.UserName).toBe(userName);
    expect(await storedShare(home)).toEqual(before);
    // Validated, the change reaches for the share with its stored account, not for a credential 'none was given'.
    const validated = await runCli(home, ['Set-BackupShare', '-BackupFrequencyInHours', '8'], { env });
    expect(validated.errors[0]?.ErrorId, validated.stderr).toBe('ShareUnreachable');
  });

  it('is not used to read the configured SMB share', async () => {
    const home = await smbHome(`read-${variable}`);
    const r = await runCli(home, ['Get-InfrastructureBackup'], { env });
    expect(r.errors[0]?.ErrorId, r.stderr).toBe('ShareUnreachable');
    expect(r.code).toBe(10);
  });

  it('does not clash with the account given for an SMB share', async () => {
    const home = path.join(root, `given-${variable}`);
    const r = await runCli(home, ['Test-BackupShare', '-Path', smbShare, '-UserName', userName, '-Password', '-'], {
      env,
      stdin: 'share-password\n',
    });
    expect(r.errors[0]?.ErrorId, r.stderr).toBe('ShareUnreachable');
    expect(r.code).toBe(10);
  });

  it('is not sealed into the configuration of a local folder share', async () => {
    const home = path.join(root, `local-${variable}`);
    const share = path.join(root, `share-${variable}`);
    await fs.mkdir(share);
    expectOk(await runCli(home, ['Set-BackupShare', '-Path', share, '-EncryptionKey', '-'], { env, stdin: `${key}\n` }));
    expect(await storedShare(home)).toEqual({ path: share });
  });
});
