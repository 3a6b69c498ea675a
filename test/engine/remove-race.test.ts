import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { CLI, cliEnv, expectOk, makeDrill, type Drill, list } from '../support/cli.js';

/**
 * Remove-InfrastructureBackup refuses the last restorable backup without -Force. It decided that
 * before it asked to confirm and before it took the job lock: an operator at the confirmation
 * prompt for one of the last two good backups, while a script removed the other, then deleted
 * the last one, without the refusal. The operator's command runs on a terminal (`script` gives it
 * one), so it holds at its prompt for as long as the test wants: the interleaving is exact.
 */

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

describe('two removals of the last two restorable backups at once', () => {
  let d: Drill;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('leave one of them: the second is refused as the last', async () => {
    const older = (await d.backup()).Name as string;
    const newer = (await d.backup()).Name as string;

    // The operator, on a terminal, is asked to confirm the removal of the newer one.
    let out = '';
    const human = execa(
      'script',
      ['-qfec', `${quote(process.execPath)} ${quote(CLI)} Remove-InfrastructureBackup -Name ${newer}`, '/dev/null'],
      {
        env: cliEnv(d.home),
        extendEnv: false,
        stdin: 'pipe',
        reject: false,
        timeout: 60_000,
      },
    );
    human.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const deadline = Date.now() + 30_000;
    while (!out.includes('Are you sure')) {
      if (Date.now() > deadline) throw new Error(`no prompt: ${out}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    // Meanwhile a script removes the older one: two were restorable, so it may.
    expectOk(await d.cli(['Remove-InfrastructureBackup', '-Name', older, '-Confirm:$false']), 'Remove-InfrastructureBackup (script)');

    // The operator says yes.
    human.stdin?.write('y\r');
    const ended = await human;
    const left = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json).filter((b) => b.IsCloudRecoveryReady);
    expect(
      left.map((b) => b.Name),
      out,
    ).toEqual([newer]);
    expect(ended.exitCode, out).toBe(2);
    expect(out).toContain('LastRestorableBackup');
  });
});
