import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, type Drill, list } from '../support/cli.js';

/**
 * Share alerts (SharePath, ShareConnectivity, ShareAuthentication, ShareCapacity) close when a
 * backup succeeds on the share. An operator who answers one by moving to another share, which
 * Set-BackupShare has just found reachable, writable and with room, was still shown the old
 * share's alert as active until the next backup; a monitoring system paged for a problem solved.
 */

describe('share alerts when the operator moves to another share', () => {
  let d: Drill;

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
  });
  afterAll(async () => d?.cleanup());

  it('close once Set-BackupShare has checked the new share, and stay open under -SkipValidation', async () => {
    await fs.rm(d.share, { recursive: true, force: true });
    const failed = await d.cli(['Start-InfrastructureBackup']);
    expect(failed.code).not.toBe(0);
    const active = () =>
      d.cli(['Get-BackupAlert']).then((r) => list(expectOk(r).json).filter((a) => a.Status === 'Active' && a.AlertType === 'SharePath'));
    expect(await active()).toHaveLength(1);

    const unchecked = path.join(d.root, 'unchecked-share');
    await fs.mkdir(unchecked);
    expectOk(await d.cli(['Set-BackupShare', '-Path', unchecked, '-SkipValidation']));
    expect(await active()).toHaveLength(1);

    const moved = path.join(d.root, 'new-share');
    await fs.mkdir(moved);
    expectOk(await d.cli(['Set-BackupShare', '-Path', moved]));
    expect(await active()).toEqual([]);
  });
});
