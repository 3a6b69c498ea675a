import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, list, parseErrors, runCli } from '../support/cli.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';
import { makeSmbDrill, type SmbDrill } from '../support/smb-drill.js';

/**
 * Ctrl-C at a terminal signals its whole foreground process group: the CLI, and the smbclient
 * feeding a pack to the share. Defect this pinned: smbclient, in the CLI's group, died of the
 * SIGINT before the backup stopped it; its death read as the share's ("The transfer ... stopped:
 * smbclient quit reading"), so the stopped backup was recorded as failed on the share and raised
 * a Critical ShareConnectivity alert ("The backup share cannot be reached") for a share that was
 * fine.
 */

describe.skipIf(!sambaAvailable())('a backup to an SMB share stopped with Ctrl-C mid-upload', () => {
  let samba: SambaServer;
  let d: SmbDrill;

  beforeAll(async () => {
    samba = await startSamba();
    // Random bytes: packs of 32 MiB are uploaded for a few seconds.
    d = await makeSmbDrill(samba, { randomBytes: 400 * 1024 * 1024 });
  }, 120_000);
  afterAll(async () => {
    await d?.cleanup();
    await samba?.stop();
  });

  /** Whether smbclient has begun to put a pack on the share (its folder is made at the first). */
  const uploading = async (): Promise<boolean> =>
    (await fs.readdir(path.join(d.diskFolder, 'AzsRepository', 'packs')).catch(() => [])).length > 0;

  it('is recorded as stopped, and raises no alert that the share cannot be reached', async () => {
    // Its own process group, as a shell's job is: the signal goes to every process in it.
    const child = execa(process.execPath, [CLI, 'Start-InfrastructureBackup', '--output', 'json'], {
      env: cliEnv(d.home),
      extendEnv: false,
      input: '',
      reject: false,
      timeout: 120_000,
      detached: true,
    });
    const deadline = Date.now() + 60_000;
    while (!(await uploading())) {
      if (Date.now() > deadline) throw new Error('no pack upload began within 60 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    process.kill(-child.pid!, 'SIGINT');
    const r = await child;
    expect(r.exitCode, String(r.stderr)).toBe(130);
    expect(parseErrors(String(r.stderr)).map((e) => e.ErrorId)).toEqual(['PipelineStopped']);

    const alerts = JSON.parse(await fs.readFile(path.join(d.home, 'alerts.json'), 'utf8').catch(() => '[]')) as { AlertType: string }[];
    expect(alerts.map((a) => a.AlertType)).not.toContain('ShareConnectivity');
    const [record] = list((await runCli(d.home, ['Get-InfrastructureBackup'])).json);
    expect(record.Progress).not.toMatch(/smbclient quit reading/);
  }, 180_000);
});
