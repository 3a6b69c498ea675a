import { expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { createProvider } from '../../src/providers/index.js';
import { Readable } from 'node:stream';
import { describeWithAndWithoutAddons } from '../support/native-switch.js';
import { exportAll } from '../support/provider-fixtures.js';
import { withNoMoreThreadsAsync } from '../support/thread-limit.js';

/**
 * A role's program that cannot be started because this account or service may start no more
 * processes (fork or posix_spawn: EAGAIN, under ulimit -u or a cgroup's pids.max). Defect this
 * pinned: it was reported as "The export command 'tar' of role 'X' failed (posix_spawn: Resource
 * temporarily unavailable); it wrote nothing to stderr", advising to read a stderr there never was
 * and, in the backup, to fix the role's source: nothing said a limit on processes was reached.
 */

const role = {
  name: 'Configuration',
  provider: 'command' as const,
  restoreOrder: 1,
  exportCommand: ['echo', 'data'],
  importCommand: ['sh', '-c', 'cat >/dev/null'],
};

/** What `run` threw where no process may be started; undefined where no such limit may be set here. */
async function failureOf(run: () => Promise<unknown>): Promise<AzsError | undefined> {
  const outcome = await withNoMoreThreadsAsync(() =>
    run().then(
      () => 'it worked',
      (e: unknown) => e,
    ),
  );
  return outcome as AzsError | undefined;
}

function expectProcessLimit(e: AzsError): void {
  expect(e).toBeInstanceOf(AzsError);
  expect(e.message).toMatch(/could not be started.*limit on processes/);
  expect(e.message).not.toMatch(/stderr/);
  expect(e.errorId).toBe('CommandProviderProcessLimit');
  expect(e.recommendedAction).toMatch(/ulimit -u/);
  expect(e.recommendedAction).toMatch(/pids/);
}

describeWithAndWithoutAddons('a role program where no process may be started', () => {
  it('export: says a limit on processes is reached, and how to raise it', async (ctx) => {
    const provider = await createProvider(role);
    const e = await failureOf(() => exportAll(provider));
    if (e === undefined) return ctx.skip('no pids cgroup may be made here (needs root)');
    expectProcessLimit(e);
  });

  it('import: says a limit on processes is reached, and how to raise it', async (ctx) => {
    const provider = await createProvider(role);
    const e = await failureOf(() => provider.import(Readable.from([Buffer.from('data')])));
    if (e === undefined) return ctx.skip('no pids cgroup may be made here (needs root)');
    expectProcessLimit(e);
  });
});
