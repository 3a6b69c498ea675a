import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandArgs, expectOk, makeDrill, runCli, spawnCli, whileRunning, type Drill } from '../support/cli.js';
import { readBackup } from '../support/repository-reader.js';

/**
 * Two machines back up to one new repository at once. The first (B) has written a whole pack under
 * its final name but no index file yet (it indexes its packs at commit); the second (A) finds the
 * index folder empty and packs present, so it rebuilds the index from the packs, B's included, and
 * deduplicates against B's chunks. B is then cancelled, and gives up the packs it never indexed,
 * deleting them: A's committed backup names a pack that is gone.
 */

const MiB = 1 << 20;

async function finalPacks(share: string): Promise<string[]> {
  const root = path.join(share, 'AzsRepository', 'packs');
  const entries = await fs.readdir(root, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile() && /^[0-9a-f]{64}\.pack$/.test(e.name)).map((e) => e.name);
}

/** Machine A (the drill's home) and machine B (its own home), the same key, one share, a role "Big" each. */
async function twoMachines(): Promise<{ d: Drill; homeB: string; big: string }> {
  const d = await makeDrill({ roles: false });
  const big = path.join(d.root, 'big.bin');
  // Random, so it does not compress: more than one pack of 32 MiB for each of two packing threads.
  await fs.writeFile(big, randomBytes(100 * MiB));
  const homeB = path.join(d.root, 'home-b');
  await fs.mkdir(homeB);
  expectOk(
    await runCli(homeB, ['Set-BackupShare', '-Path', d.share, '-EncryptionKey', '-'], { stdin: `${d.key}\n` }),
    'Set-BackupShare (B)',
  );
  const importArgs = commandArgs('ImportCommand', ['sh', '-c', `cat > ${path.join(d.root, 'restored.bin')}`]);
  // B's export sends the file, then waits: its pack is complete, its backup not.
  expectOk(
    await runCli(homeB, [
      'Register-InfrastructureRole',
      '-Name',
      'Big',
      '-Provider',
      'command',
      ...commandArgs('ExportCommand', ['sh', '-c', `cat ${big}; sleep 60`]),
      ...importArgs,
    ]),
    'Register-InfrastructureRole (B)',
  );
  await d.register('Big', ['-Provider', 'command', ...commandArgs('ExportCommand', ['cat', big]), ...importArgs]);
  return { d, homeB, big };
}

/**
 * `beside` runs on A while B's first backup has a complete pack no index file names, and gives the
 * name of the backup A made; then B is cancelled, and A's backup must still restore whole.
 */
async function besideUnfinishedBackup(m: { d: Drill; homeB: string; big: string }, beside: () => Promise<string>): Promise<void> {
  const { d, homeB, big } = m;
  const b = spawnCli(homeB, ['Start-InfrastructureBackup'], { timeoutMs: 120_000 });
  try {
    await whileRunning(b, "B's first complete pack", async () => (await finalPacks(d.share)).length > 0);
    const name = await beside();
    b.kill('SIGINT');
    // Stopped: it committed nothing, and gave up what it had not indexed.
    expect((await b).exitCode).toBe(130);
    const read = await readBackup(d.share, name, { kind: 'Key', key: Buffer.from(d.key!, 'base64') });
    expect(read.roles.get('Big')!.equals(await fs.readFile(big))).toBe(true);
  } finally {
    b.kill('SIGKILL');
  }
}

async function backUp(d: Drill): Promise<string> {
  const a = expectOk(await d.cli(['Start-InfrastructureBackup'], { timeoutMs: 120_000 }), 'Start-InfrastructureBackup (A)');
  expect(a.json.Status).toBe('Succeeded');
  return a.json.Name;
}

describe("a backup that rebuilds a lost index beside another machine's backup", () => {
  let m: Awaited<ReturnType<typeof twoMachines>>;
  beforeAll(async () => {
    m = await twoMachines();
  }, 60_000);
  afterAll(async () => m?.d.cleanup());

  it("does not commit a backup that needs packs the other machine's unfinished backup may still give up", async () => {
    await besideUnfinishedBackup(m, () => backUp(m.d));
  }, 180_000);
});

describe("Test-BackupRepository -Repair beside another machine's backup", () => {
  let m: Awaited<ReturnType<typeof twoMachines>>;
  beforeAll(async () => {
    m = await twoMachines();
  }, 60_000);
  afterAll(async () => m?.d.cleanup());

  it("does not index the packs the other machine's unfinished backup may still give up, so no backup commits needing them", async () => {
    const { d } = m;
    await besideUnfinishedBackup(m, async () => {
      expectOk(
        await d.cli(['Test-BackupRepository', '-Path', d.share, '-Repair', '-EncryptionKey', '-'], { stdin: `${d.key}\n` }),
        'Test-BackupRepository -Repair',
      );
      return backUp(d);
    });
  }, 180_000);
});
