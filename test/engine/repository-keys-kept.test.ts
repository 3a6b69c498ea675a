import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processStartTime } from '../../src/config/file-lock.js';
import { expectOk, makeDrill, spawnCli, whileRunning, type Drill } from '../support/cli.js';

/**
 * The first backup in certificate mode creates the share's repository (AzsRepository/config.xml,
 * its master key wrapped for the certificate) and keeps the host keys in AZSBACKUP_HOME
 * (config.json). It used to keep them only after config.xml was in place: killed between the two
 * (kill -9, power loss, a full home folder, a configuration lock held past its 30 s wait), the
 * repository existed but this machine had no keys for it and no committed backup named it, so
 * every later backup was a full copy, for good (a machine joins a store only when a committed
 * backup names it). The keys are now kept first.
 *
 * The kill lands exactly there: the test holds the configuration lock as a live process, so the
 * backup waits for it right after config.xml is renamed into place (and is killed as soon as the
 * file shows; a backup that keeps the keys first waits before it, and is killed after 5 s).
 */

describe('kill -9 of the first backup between creating the repository and keeping its host keys', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'certificate' });
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('leaves a repository the machine can still back up into, at the latest once given the .pfx', async () => {
    const lock = path.join(d.home, 'config.lock');
    // A live holder (this test's own process): the backup waits for the lock, up to 30 s.
    await fs.writeFile(
      lock,
      JSON.stringify({
        pid: process.pid,
        startTime: processStartTime(process.pid),
        hostname: hostname(),
        acquiredAt: new Date().toISOString(),
        purpose: 'configuration',
      }),
    );
    const config = path.join(d.share, 'AzsRepository', 'config.xml');
    const first = spawnCli(d.home, ['Start-InfrastructureBackup']);
    // Killed once the share shows the repository, or once the backup has waited 5 s for the lock
    // without the share showing it (a backup that keeps the host keys before it publishes them).
    const waitUntil = Date.now() + 5_000;
    await whileRunning(
      first,
      'the repository was created or the backup waited for the lock',
      async () => (await fs.stat(config).catch(() => undefined)) !== undefined || Date.now() > waitUntil,
    );
    first.kill('SIGKILL');
    await first;
    await fs.rm(lock);

    // The documented way back to deduplicating backups in certificate mode: give the .pfx once.
    expectOk(
      await d.cli(['Set-BackupShare', '-DecryptionCertPath', d.pfx!, '-DecryptionCertPassword', '-'], { stdin: `${d.pfxPassword}\n` }),
      'Set-BackupShare -DecryptionCertPath',
    );
    const next = expectOk(await d.cli(['Start-InfrastructureBackup']), 'Start-InfrastructureBackup');
    expect(next.json.Status).toBe('Succeeded');
    // In the repository (catalogs), not a full copy (role files), and no warning about one.
    expect(next.stderr).not.toMatch(/full copy/);
    expect(
      (await fs.readdir(await d.backupFolder(next.json.Name))).filter((f) => f !== 'BackupInfo.xml').every((f) => f.endsWith('.azscat')),
    ).toBe(true);
  }, 180_000);
});
