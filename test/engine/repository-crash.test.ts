import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, makeDrill, spawnCli, whileRunning, type Drill, list } from '../support/cli.js';
import { readBackup } from '../support/repository-reader.js';

/**
 * kill -9 of a real format 3 Start-InfrastructureBackup at each step of its commit (docs/FORMAT.md
 * section 8.9), with committed backups on the share: while a pack is being written, after the packs
 * are renamed into place but before the index names them, after the index but before the catalogs,
 * after the catalogs but before BackupInfo.xml, and after BackupInfo.xml but before the folder's
 * rename. The exact steps are reached with AZSBACKUP_TEST_HALT_AT, a test-only switch that stops
 * the backup there for good (src/engine/backup.ts); the pack write with an export that stalls
 * half-way. After each kill: every committed backup still verifies and restores byte-identical
 * (through the product, and through the independent reader), nothing half-written lists, and the
 * next backup succeeds and restores.
 *
 * And format 3 beside the old format: a full copy (AZSBACKUP_STORE=full-copy) and a format 3 backup
 * on one share both list, verify and restore.
 */

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

/** What lies in the repository and the staging folders at a moment. */
async function shareState(share: string) {
  const packs = await filesUnder(path.join(share, 'AzsRepository', 'packs'));
  const staged: string[] = [];
  const root = path.join(share, 'MASBackup');
  for (const stamp of await fs.readdir(root).catch(() => [] as string[])) {
    for (const child of await fs.readdir(path.join(root, stamp))) {
      if (child.endsWith('.partial'))
        staged.push(...(await filesUnder(path.join(root, stamp, child))).map((f) => `${stamp}/${child}/${f}`));
    }
  }
  return {
    packs: packs.filter((p) => p.endsWith('.pack') && !path.basename(p).startsWith('.')),
    // A pending pack, or (on a local folder, which writes every file through a temporary name) that name's temporary name.
    pending: packs.filter((p) => path.basename(p).includes('.pending-')),
    indexes: await filesUnder(path.join(share, 'AzsRepository', 'index')),
    staged,
  };
}

type State = Awaited<ReturnType<typeof shareState>>;

interface KillPoint {
  name: string;
  /** The test-only halt step; none: the pack write, caught with a stalling export. */
  halt?: 'packs' | 'index' | 'catalogs' | 'info';
  /** What the share shows at the kill, against what it showed before the backup. */
  expectState(before: State, at: State): void;
}

const newOnes = (before: string[], at: string[]) => at.filter((p) => !before.includes(p));

const killPoints: KillPoint[] = [
  {
    name: 'while a pack is being written',
    expectState(before, at) {
      // One open pack per packing thread that has work (src/repository/packers.ts: two at most).
      const pending = newOnes(before.pending, at.pending).length;
      expect(pending).toBeGreaterThanOrEqual(1);
      expect(pending).toBeLessThanOrEqual(2);
      expect(at.indexes).toEqual(before.indexes);
      expect(at.staged.filter((f) => f.endsWith('.azscat'))).toEqual([]);
    },
  },
  {
    name: 'after its packs are renamed, before the index',
    halt: 'packs',
    expectState(before, at) {
      expect(newOnes(before.packs, at.packs).length).toBeGreaterThan(0);
      expect(at.indexes).toEqual(before.indexes);
      expect(at.staged).toEqual([]);
    },
  },
  {
    name: 'after the index, before the catalogs',
    halt: 'index',
    expectState(before, at) {
      expect(newOnes(before.indexes, at.indexes).length).toBe(1);
      expect(at.staged).toEqual([]);
    },
  },
  {
    name: 'after the catalogs, before BackupInfo.xml',
    halt: 'catalogs',
    expectState(_before, at) {
      expect(at.staged.sort()).toEqual(['Data.azscat', 'Small.azscat']);
    },
  },
  {
    name: 'after BackupInfo.xml, before the rename',
    halt: 'info',
    expectState(_before, at) {
      expect(at.staged.sort()).toEqual(['BackupInfo.xml', 'Data.azscat', 'Small.azscat']);
    },
  },
];

describe('kill -9 during a format 3 backup', () => {
  let d: Drill;
  let data: string;
  let small: string;
  let stall: string;
  let restoredData: string;
  let restoredSmall: string;
  /** The bytes every committed backup holds: its roles' exports. */
  const committed = new Map<string, { data: Buffer; small: Buffer }>();
  /** Shared by every backup's Data, so chunks dedup against earlier packs too. */
  const common = randomBytes(2 * 1024 * 1024);

  /** New role data for the next backup: 3 MiB new beside the common part, a new small role. */
  async function changeData(): Promise<{ data: Buffer; small: Buffer }> {
    const next = {
      data: Buffer.concat([common, randomBytes(3 * 1024 * 1024)]),
      small: Buffer.from(`small ${randomBytes(8).toString('hex')}\n`),
    };
    await fs.writeFile(data, next.data);
    await fs.writeFile(small, next.small);
    return next;
  }

  async function backUp(): Promise<void> {
    const bytes = await changeData();
    const backup = await d.backup();
    expect(backup.Status).toBe('Succeeded');
    committed.set(backup.Name, bytes);
  }

  /** Each committed backup verifies with the key and restores to exactly its bytes, by the product and the reader. */
  async function expectEveryCommittedRestores(): Promise<void> {
    const { args, stdin } = d.decryptArgs();
    for (const [name, bytes] of committed) {
      const test = await d.cli(['Test-InfrastructureBackup', '-Name', name, ...args], { stdin });
      expect(test.code, test.stderr).toBe(0);
      expect(test.json.IsValid).toBe(true);
      expectOk(await d.cli(['Restore-AzsBackup', '-Name', name, ...args, '-Confirm:$false'], { stdin }), `Restore-AzsBackup ${name}`);
      expect(sha256(await fs.readFile(restoredData))).toBe(sha256(bytes.data));
      expect(sha256(await fs.readFile(restoredSmall))).toBe(sha256(bytes.small));
      const read = await readBackup(d.share, name, { kind: 'Key', key: Buffer.from(d.key!, 'base64') });
      expect(read.roles.get('Data')!.equals(bytes.data)).toBe(true);
    }
  }

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    data = path.join(d.root, 'data.bin');
    small = path.join(d.root, 'small.txt');
    stall = path.join(d.root, 'stall');
    restoredData = path.join(d.root, 'restored-data.bin');
    restoredSmall = path.join(d.root, 'restored-small.txt');
    // Data's export stalls half-way while the file `stall` exists: its chunks so far are in a pending pack.
    await d.registerCommand(
      'Data',
      ['sh', '-c', `cat '${data}'; if [ -f '${stall}' ]; then exec sleep 60; fi`],
      ['sh', '-c', `cat > '${restoredData}'`],
    );
    await d.registerCommand('Small', ['cat', small], ['sh', '-c', `cat > '${restoredSmall}'`]);
    await backUp();
  });
  afterAll(async () => d?.cleanup());

  it.each(killPoints)('killed $name: committed backups restore, nothing half-written lists, the next backup works', async (point) => {
    await changeData();
    const before = await shareState(d.share);
    let stderr = '';
    if (!point.halt) await fs.writeFile(stall, '');
    const child = spawnCli(d.home, ['Start-InfrastructureBackup'], point.halt ? { env: { AZSBACKUP_TEST_HALT_AT: point.halt } } : {});
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    let at: State;
    try {
      if (point.halt)
        await whileRunning(child, `the halt at ${point.halt}`, async () => stderr.includes(`AZSBACKUP_TEST_HALTED ${point.halt}`));
      else
        await whileRunning(child, 'a pending pack over 512 KiB', async () => {
          for (const p of (await shareState(d.share)).pending) {
            const st = await fs.stat(path.join(d.share, 'AzsRepository', 'packs', p)).catch(() => undefined);
            if (st && st.size > 512 * 1024) return true;
          }
          return false;
        });
      at = await shareState(d.share);
      // The staging folder of this backup only: earlier kills left theirs.
      at.staged = newOnes(before.staged, at.staged).map((f) => path.basename(f));
    } finally {
      child.kill('SIGKILL');
      await fs.rm(stall, { force: true });
    }
    expect((await child).signal).toBe('SIGKILL');
    point.expectState(before, at);

    await expectEveryCommittedRestores();
    const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(
      listed
        .filter((b) => b.Status !== 'Failed')
        .map((b) => b.Name)
        .sort(),
    ).toEqual([...committed.keys()].sort());

    await backUp();
    await expectEveryCommittedRestores();
  });
});

describe('a full copy and a format 3 backup on one share', () => {
  let d: Drill;
  let fixed: string;
  let restored: string;
  const made: { name: string; format: string; bytes: Buffer }[] = [];

  beforeAll(async () => {
    d = await makeDrill({ roles: false });
    fixed = path.join(d.root, 'fixed.bin');
    restored = path.join(d.root, 'restored.bin');
    await d.registerCommand('Fixed', ['cat', fixed], ['sh', '-c', `cat > '${restored}'`]);
    for (const [format, env] of [
      ['2', { AZSBACKUP_STORE: 'full-copy' }],
      ['3', {}],
      ['2', { AZSBACKUP_STORE: 'full-copy' }],
    ] as const) {
      const bytes = randomBytes(1024 * 1024);
      await fs.writeFile(fixed, bytes);
      const backup = expectOk(await d.cli(['Start-InfrastructureBackup'], { env }), 'Start-InfrastructureBackup').json;
      made.push({ name: backup.Name, format, bytes });
    }
  });
  afterAll(async () => d?.cleanup());

  it('are in their formats, and both list', async () => {
    for (const b of made) {
      const folder = await d.backupFolder(b.name);
      expect(await fs.readFile(path.join(folder, 'BackupInfo.xml'), 'utf8')).toContain(`FormatVersion="${b.format}"`);
      expect(await fs.readdir(folder)).toContain(b.format === '3' ? 'Fixed.azscat' : 'Fixed.azsrole');
    }
    const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
    expect(listed.map((b) => [b.Name, b.Status]).sort()).toEqual(made.map((b) => [b.name, 'Succeeded']).sort());
  });

  it('both pass Test-InfrastructureBackup, keyless and keyed, and both restore byte-identical', async () => {
    const { args, stdin } = d.decryptArgs();
    for (const b of made) {
      const keyless = await d.cli(['Test-InfrastructureBackup', '-Name', b.name]);
      expect(keyless.code, keyless.stderr).toBe(0);
      expect(keyless.json.IsValid).toBe(true);
      const keyed = await d.cli(['Test-InfrastructureBackup', '-Name', b.name, ...args], { stdin });
      expect(keyed.code, keyed.stderr).toBe(0);
      expect(keyed.json.IsValid).toBe(true);
      expectOk(await d.cli(['Restore-AzsBackup', '-Name', b.name, ...args, '-Confirm:$false'], { stdin }), `Restore-AzsBackup ${b.name}`);
      expect((await fs.readFile(restored)).equals(b.bytes)).toBe(true);
      const read = await readBackup(d.share, b.name, { kind: 'Key', key: Buffer.from(d.key!, 'base64') });
      expect(read.formatVersion).toBe(Number(b.format));
      expect(read.roles.get('Fixed')!.equals(b.bytes)).toBe(true);
    }
  });
});
