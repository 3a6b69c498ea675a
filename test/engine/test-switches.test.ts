import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDrill, type Drill } from '../support/cli.js';

/**
 * The test-only switches (AZSBACKUP_TEST_*) reach the CLI through the operator's environment like
 * any variable: a value that is not a number must be ignored, not break every backup. A stray
 * AZSBACKUP_TEST_DIRTY_PAGES_MS of "yes" made BigInt(NaN) throw as the backup engine loaded, and
 * Start-InfrastructureBackup failed with an internal error before doing anything.
 */

let d: Drill;

describe('test-only switches with values that are not numbers', () => {
  beforeAll(async () => {
    d = await makeDrill();
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it.each(['yes', '1.5', '-3', ''])('AZSBACKUP_TEST_DIRTY_PAGES_MS=%j is ignored: the backup succeeds', async (value) => {
    const r = await d.cli(['Start-InfrastructureBackup'], { env: { AZSBACKUP_TEST_DIRTY_PAGES_MS: value } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.Status).toBe('Succeeded');
  });
});
