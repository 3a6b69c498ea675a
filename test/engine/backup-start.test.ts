import { processesWith } from '../support/cli.js';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { symmetricKeyId } from '../../src/crypto/symmetric-key.js';
import { runBackup } from '../../src/engine/backup.js';
import { repositoryForBackup } from '../../src/engine/repository-access.js';
import { AzsError } from '../../src/errors.js';
import { silentProgress } from '../../src/progress.js';
import type { RoleDefinition } from '../../src/providers/provider.js';
import { LocalFolderTarget } from '../../src/targets/local.js';

/** A local folder whose mkdir takes as long as an SMB round trip, and may then fail. */
class SlowMkdirTarget extends LocalFolderTarget {
  mkdirDone = 0;
  constructor(
    root: string,
    private readonly delayMs: number,
    private readonly failure?: AzsError,
  ) {
    super(root);
  }
  override async mkdir(p: string): Promise<void> {
    await new Promise((r) => setTimeout(r, this.delayMs));
    this.mkdirDone = Date.now();
    if (this.failure) throw this.failure;
    return super.mkdir(p);
  }
}

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-start-'));
  await fs.mkdir(path.join(tmp, 'share'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const key = Buffer.alloc(32, 7);
const recipient = { kind: 'Key' as const, keyId: symmetricKeyId(key), key };

/** A role whose export notes when it started, then sends 32 MiB: more than the pipes between hold. */
function markingRole(marker: string): RoleDefinition {
  return {
    name: 'Configuration',
    provider: 'command',
    restoreOrder: 1,
    exportCommand: ['sh', '-c', `date +%s%3N > '${marker}'; head -c 33554432 /dev/zero`],
    importCommand: ['true'],
  };
}

describe('the start of a backup', () => {
  it('starts the roles while the share makes the staging folder', async () => {
    const marker = path.join(tmp, 'export-started');
    const target = new SlowMkdirTarget(path.join(tmp, 'share'), 400);
    const started = Date.now();
    const { record } = await runBackup({
      target,
      sharePath: target.root,
      recipients: [recipient],
      roles: [markingRole(marker)],
      progress: silentProgress,
    });
    expect(record.Status).toBe('Succeeded');
    const exportStarted = Number((await fs.readFile(marker, 'utf8')).trim());
    expect(exportStarted).toBeGreaterThanOrEqual(started - 1000);
    expect(exportStarted).toBeLessThan(target.mkdirDone);
  });

  it('fails with the share error when the staging folder cannot be made, and stops the exports', async () => {
    const marker = path.join(tmp, 'export-started');
    const failure = new AzsError('The share is unreachable.', {
      errorId: 'ShareUnreachable',
      category: 'ConnectionError',
      exitCode: 10,
      alertType: 'ShareConnectivity',
    });
    const target = new SlowMkdirTarget(path.join(tmp, 'share'), 300, failure);
    await expect(
      runBackup({ target, sharePath: target.root, recipients: [recipient], roles: [markingRole(marker)], progress: silentProgress }),
    ).rejects.toBe(failure);
    await fs.access(marker);
    // The export's process group is stopped, not left writing into a pipe nobody reads.
    const deadline = Date.now() + 5000;
    while (processesWith(marker) !== '' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(processesWith(marker)).toBe('');
    expect(await fs.readdir(path.join(tmp, 'share'))).toEqual([]);
  });

  it("a role whose export fails while the repository's index still loads fails alone; nothing is left unhandled", async () => {
    const target = new SlowListTarget(path.join(tmp, 'share'), 500);
    const { repository } = await repositoryForBackup(target, [recipient]);
    const broken: RoleDefinition = {
      name: 'Broken',
      provider: 'command',
      restoreOrder: 1,
      exportCommand: ['sh', '-c', 'echo broken >&2; exit 3'],
      importCommand: ['true'],
    };
    const { record, roleErrors } = await runBackup({
      target,
      sharePath: target.root,
      recipients: [recipient],
      roles: [broken, markingRole(path.join(tmp, 'marker'))],
      progress: silentProgress,
      repository,
    });
    expect(record.Status).toBe('PartialSucceeded');
    expect(roleErrors.map((e) => e.targetObject)).toEqual(['Broken']);
  });
});

/** A local folder whose listings take as long as a slow share's (loading the repository's index lists its folder). */
class SlowListTarget extends LocalFolderTarget {
  constructor(
    root: string,
    private readonly delayMs: number,
  ) {
    super(root);
  }
  override async list(p: string) {
    await new Promise((r) => setTimeout(r, this.delayMs));
    return super.list(p);
  }
}
