import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, list, parseErrors, runCli } from '../support/cli.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';
import { makeSmbDrill, type SmbDrill, writeRandom } from '../support/smb-drill.js';

/**
 * Ctrl-C at a terminal signals its whole foreground process group: the CLI, and the smbclient
 * feeding a pack to the share. Defect this pinned: smbclient, in the CLI's group, died of the
 * SIGINT before the backup stopped it; its death read as the share's ("The transfer ... stopped:
 * smbclient quit reading"), so the stopped backup was recorded as failed on the share and raised
 * a Critical ShareConnectivity alert ("The backup share cannot be reached") for a share that was
 * fine. systemd stopping the service signals every process of it at once, smbclient too: a failure
 * the share gives once the backup was told to stop is not the share's.
 */

describe.skipIf(!sambaAvailable())('a backup to an SMB share stopped with Ctrl-C mid-upload', () => {
  let samba: SambaServer;
  let d: SmbDrill;

  beforeAll(async () => {
    samba = await startSamba();
    d = await makeSmbDrill(samba);
  }, 120_000);
  afterAll(async () => {
    await d?.cleanup();
    await samba?.stop();
  });

  /** Whether the CLI `pid` runs an smbclient that puts a file (a pack) on the share. */
  const uploading = (pid: number): boolean => {
    try {
      execFileSync('pgrep', ['-P', String(pid), '-f', 'put - ']);
      return true;
    } catch {
      return false;
    }
  };

  /** A backup started in a process group of its own, stopped by `stop` (given its pid) once a pack upload began. */
  async function backUpAndStop(stop: (pid: number) => void): Promise<void> {
    // New random bytes each time: packs of 32 MiB to upload for a few seconds.
    await writeRandom(path.join(d.files, 'big.bin'), 400 * 1024 * 1024);
    // Its own process group, as a shell's job is: a terminal's signal goes to every process in it.
    const child = execa(process.execPath, [CLI, 'Start-InfrastructureBackup', '--output', 'json'], {
      env: cliEnv(d.home),
      extendEnv: false,
      input: '',
      reject: false,
      timeout: 120_000,
      detached: true,
    });
    const deadline = Date.now() + 60_000;
    while (!uploading(child.pid!)) {
      if (Date.now() > deadline) throw new Error('no pack upload began within 60 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    stop(child.pid!);
    const r = await child;
    expect(r.exitCode, String(r.stderr)).toBe(130);
    expect(parseErrors(String(r.stderr)).map((e) => e.ErrorId)).toEqual(['PipelineStopped']);

    const alerts = JSON.parse(await fs.readFile(path.join(d.home, 'alerts.json'), 'utf8').catch(() => '[]')) as { AlertType: string }[];
    expect(alerts.map((a) => a.AlertType)).not.toContain('ShareConnectivity');
    const [record] = list((await runCli(d.home, ['Get-InfrastructureBackup'])).json);
    expect(record.Progress).not.toMatch(/smbclient quit reading/);
  }

  it('Ctrl-C: is recorded as stopped, and raises no alert that the share cannot be reached', async () => {
    await backUpAndStop((pid) => process.kill(-pid, 'SIGINT'));
  }, 180_000);

  it('systemctl stop (SIGTERM to every process of the service): the same', async () => {
    await fs.rm(path.join(d.home, 'alerts.json'), { force: true });
    await backUpAndStop((pid) => {
      // systemd's KillMode=control-group: the CLI and the smbclient it runs, at once.
      const smbclients = execFileSync('pgrep', ['-P', String(pid), 'smbclient'])
        .toString()
        .split('\n')
        .filter(Boolean)
        .map(Number);
      for (const p of [pid, ...smbclients]) process.kill(p, 'SIGTERM');
    });
  }, 180_000);
});
