import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, type Drill, list } from '../support/cli.js';

/**
 * Get-BackupAlert showed `DeliveryError: null` for an alert that was never sent (no sink was
 * configured, or the process that raised it died before sending), and the guide says null means
 * a sending succeeded: an operator checking that the pager had heard of a failure read "delivered"
 * where nothing had gone out. Each alert now shows DeliveryStatus: NotSent, Failed or Delivered.
 */

describe('whether an alert reached its sinks, as Get-BackupAlert shows it', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    await d.registerCommand('Broken', ['sh', '-c', 'echo export exploded >&2; exit 3'], ['sh', '-c', 'cat >/dev/null']);
  });
  afterAll(async () => d?.cleanup());

  const shown = async () => {
    const [alert] = list(expectOk(await d.cli(['Get-BackupAlert', '-Status', 'Active'])).json);
    return { DeliveryStatus: alert.DeliveryStatus, DeliveryError: alert.DeliveryError };
  };

  it('says NotSent, Failed or Delivered, never null for an alert not sent', async () => {
    expect((await d.cli(['Start-InfrastructureBackup'])).code).toBe(1);
    expect(await shown()).toEqual({ DeliveryStatus: 'NotSent', DeliveryError: null });
    expect(expectOk(await d.cli(['Get-BackupAlert', '--output', 'list'])).stdout).toMatch(/DeliveryStatus\s+: NotSent/);

    expectOk(await d.cli(['Set-BackupShare', '-AlertCommand:false']));
    expect((await d.cli(['Start-InfrastructureBackup'])).code).toBe(1);
    expect(await shown()).toEqual({ DeliveryStatus: 'Failed', DeliveryError: expect.stringMatching(/alert command false/) });

    expectOk(await d.cli(['Set-BackupShare', '-AlertCommand:true']));
    expect((await d.cli(['Start-InfrastructureBackup'])).code).toBe(1);
    expect(await shown()).toEqual({ DeliveryStatus: 'Delivered', DeliveryError: null });
  });
});
