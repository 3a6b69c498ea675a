import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, spawnCli, whileRunning, type Drill } from '../support/cli.js';
import { redate } from '../support/redate.js';

/**
 * The scheduler prunes after its backup. It pruned by the configuration it read when the tick
 * started: a retention period lengthened while the backup ran (an operator keeping backups for an
 * investigation) was ignored, and the prune deleted by the old, shorter one the very backups the
 * operator had just asked to keep. Here the backup is held by a role's export command while the
 * retention is lengthened, so the interleaving is exact.
 */

const list = (json: unknown): any[] => (json === undefined ? [] : [json].flat());
const DAY = 86_400_000;

describe('a retention period lengthened while a scheduled backup runs', () => {
  let d: Drill;
  let block: string;
  let go: string;
  let blocked: string;

  beforeAll(async () => {
    d = await makeDrill({ roles: false, retentionDays: 2 });
    block = path.join(d.root, 'block');
    go = path.join(d.root, 'go');
    blocked = path.join(d.root, 'blocked');
    const exporter = path.join(d.root, 'export.mjs');
    // The first export run while `block` exists takes it, and waits until `go` exists.
    await fs.writeFile(
      exporter,
      `import { existsSync, renameSync } from 'node:fs';
let mine = false;
try { renameSync(${JSON.stringify(block)}, ${JSON.stringify(blocked)}); mine = true; } catch {}
const done = () => process.stdout.write('exported\\n');
if (mine) { const t = setInterval(() => { if (existsSync(${JSON.stringify(go)})) { clearInterval(t); done(); } }, 20); }
else done();`,
    );
    await d.registerCommand('Slow', [process.execPath, exporter], ['sh', '-c', 'cat >/dev/null']);
    expectOk(await d.cli(['Set-BackupShare', '-IsBackupSchedulerEnabled', '$true', '-BackupFrequencyInHours', '4']));
  });
  afterAll(async () => {
    await fs.writeFile(go, '').catch(() => undefined);
    await d?.cleanup();
  });

  it('is the one the prune after it goes by', async () => {
    const old = await d.backup();
    await redate(d, old.Name, new Date(Date.now() - 5 * DAY));
    // The last success was three days ago: a backup is due.
    const configFile = path.join(d.home, 'config.json');
    const config = JSON.parse(await fs.readFile(configFile, 'utf8'));
    config.lastSuccessfulBackupTime = new Date(Date.now() - 3 * DAY).toISOString();
    await fs.writeFile(configFile, JSON.stringify(config));

    await fs.writeFile(block, '');
    const tick = spawnCli(d.home, ['Invoke-BackupScheduler']);
    await whileRunning(tick, 'the scheduled backup exporting its role', () =>
      fs.access(blocked).then(
        () => true,
        () => false,
      ),
    );
    expectOk(await d.cli(['Set-BackupShare', '-BackupRetentionPeriodInDays', '7']), 'Set-BackupShare (retention lengthened)');
    await fs.writeFile(go, '');
    const ended = await tick;
    expect(ended.exitCode, String(ended.stderr)).toBe(0);

    const names = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).map((b) => b.Name);
    expect(names).toHaveLength(2);
    expect(names).toContain(old.Name);
  });
});
