import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, resultOf, spawnCli, type CliResult } from '../support/cli.js';
import { sambaAvailable, startSamba, type SambaServer } from '../support/samba.js';
import { makeSmbDrill, type SmbDrill } from '../support/smb-drill.js';

/**
 * The share password given once on stdin to Set-BackupShare must never show where another user of
 * the machine could read it: any process's command line or environment while a backup streams to
 * the share, the files under AZSBACKUP_HOME, or what any command prints.
 */

interface Sighting {
  pid: string;
  where: 'cmdline' | 'environ';
  command: string;
}

/** One pass over /proc: every command line and environment we may read. */
function sample(needles: Buffer[], seen: { rounds: number; smbclient: number; sightings: Sighting[] }): void {
  seen.rounds++;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let cmdline: Buffer;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`);
    } catch {
      continue; // gone already
    }
    const command = cmdline.toString('utf8').split('\0').join(' ').trim();
    if (/(^|\/)smbclient /.test(command)) seen.smbclient++;
    let environ: Buffer | undefined;
    try {
      environ = readFileSync(`/proc/${pid}/environ`);
    } catch {
      environ = undefined;
    }
    for (const needle of needles) {
      if (cmdline.includes(needle)) seen.sightings.push({ pid, where: 'cmdline', command });
      if (environ?.includes(needle)) seen.sightings.push({ pid, where: 'environ', command });
    }
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

describe.skipIf(!sambaAvailable())('the share password stays secret', () => {
  let samba: SambaServer;
  let d: SmbDrill;
  const outputs: CliResult[] = [];
  let needles: Buffer[];

  beforeAll(async () => {
    samba = await startSamba();
    // The password is only ever typed into Set-BackupShare's standard input.
    d = await makeSmbDrill(samba, { configure: false, randomBytes: 40 << 20 });
    outputs.push(expectOk(await d.setShare(), 'Set-BackupShare'));
    // The password as is, and in the encodings a careless writer would use.
    needles = [Buffer.from(samba.password), Buffer.from(samba.password).toString('base64'), encodeURIComponent(samba.password)].map((s) =>
      Buffer.isBuffer(s) ? s : Buffer.from(s),
    );
    // Our own test process holds no copy in its environment or command line, so a sighting is the product's.
    expect(readFileSync('/proc/self/environ').includes(needles[0]!)).toBe(false);
  });
  afterAll(async () => {
    await d?.cleanup();
    await samba?.stop();
  });

  it('no process shows it in /proc/*/cmdline or /proc/*/environ while a backup streams to the share', async () => {
    const seen = { rounds: 0, smbclient: 0, sightings: [] as Sighting[] };
    const child = spawnCli(d.home, ['Start-InfrastructureBackup'], { timeoutMs: 300_000 });
    let finished = false;
    void child.finally(() => {
      finished = true;
    });
    while (!finished) {
      sample(needles, seen);
      await new Promise((r) => setTimeout(r, 2));
    }
    const done = await child;
    const r = resultOf(done.exitCode ?? -1, String(done.stdout), String(done.stderr));
    outputs.push(expectOk(r, 'Start-InfrastructureBackup'));
    expect(r.json.Status).toBe('Succeeded');
    expect(r.json.Size).toBeGreaterThan(40 << 20);

    // The sampler really watched the transfer: it saw smbclient running, many times.
    expect(seen.rounds).toBeGreaterThan(50);
    expect(seen.smbclient).toBeGreaterThan(5);
    expect(seen.sightings).toEqual([]);
  });

  it('every other command that reaches the share keeps it out of its output', async () => {
    const config = expectOk(await d.cli(['Get-BackupConfiguration']));
    outputs.push(config);
    outputs.push(expectOk(await d.cli(['Test-BackupShare'])));
    outputs.push(expectOk(await d.cli(['Get-InfrastructureBackup'])));
    outputs.push(expectOk(await d.cli(['Get-BackupAlert'])));
    outputs.push(expectOk(await d.cli(['Invoke-BackupPrune', '-DryRun'])));
    // Failures print the account and the server's verdict, not the password that was tried.
    const wrong = `${samba.password}-but-wrong`;
    const refused = await d.cli(['Test-BackupShare', '-Path', d.path, '-UserName', samba.userName, '-Password', '-'], {
      stdin: `${wrong}\n`,
    });
    expect(refused.code).toBe(13);
    expect(refused.stdout + refused.stderr).not.toContain(wrong);
    outputs.push(refused);
    const shown = config.json;
    expect(shown.Password).toBeNull();
    expect(shown.UserName).toBe(samba.userName);

    for (const o of outputs) {
      for (const needle of needles) {
        expect(Buffer.from(o.stdout).includes(needle)).toBe(false);
        expect(Buffer.from(o.stderr).includes(needle)).toBe(false);
      }
    }
  });

  it('no file under AZSBACKUP_HOME holds it in plain text, yet the sealed copy still opens the share', async () => {
    const files = await filesUnder(d.home);
    expect(files.some((f) => f.endsWith('config.json'))).toBe(true);
    for (const f of files) {
      const bytes = await fs.readFile(f);
      for (const needle of needles) expect(bytes.includes(needle), f).toBe(false);
    }
    // Nor anywhere on the share (the probe and backups carry no credential).
    for (const f of await filesUnder(samba.root)) {
      expect((await fs.readFile(f)).includes(needles[0]!), f).toBe(false);
    }
    // And no smbclient auth file was left behind in the temp folder by our runs.
    const tmp = path.dirname(d.root);
    for (const entry of await fs.readdir(tmp)) {
      if (!entry.startsWith('azsbackup-smb-')) continue;
      const auth = path.join(tmp, entry, 'auth');
      const text = await fs.readFile(auth).catch(() => undefined);
      expect(text?.includes(needles[0]!) ?? false, auth).toBe(false);
    }
    expect(expectOk(await d.cli(['Test-BackupShare'])).json.Authenticated).toBe(true);
  });
});
