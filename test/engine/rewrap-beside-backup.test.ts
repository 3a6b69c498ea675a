import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rewrapJob } from '../../src/engine/rewrap.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import type { Target } from '../../src/targets/target.js';
import { expectOk, freshHome, list, makeDrill, parseErrors, runCli, spawnCli, whileRunning, type Drill } from '../support/cli.js';
import { heldExportRole, type Gate } from '../support/gate.js';

/**
 * Two machines on one share (a redeployed host beside the old one still running): machine B, set
 * up with a new key, runs Update-BackupEncryption with the old key while machine A, still on the
 * old key, backs up into the share's store. The job lock of B does not hold off A.
 *
 * B listed the backups as it started, re-wrapped them, and at its end wrapped the store's master
 * key for the new key alone, since no backup it had listed still needed the old one. A's backup,
 * committed after that listing, has its data key under the old key only: with the store's master
 * key under the new key only, neither key restored it, though A said Succeeded and B said the old
 * key was no longer needed.
 *
 * A's backup is held in its role's export (a gate) while B runs: the interleaving is exact.
 */

describe('Update-BackupEncryption on another machine while a backup runs', () => {
  let d: Drill;
  let gate: Gate;
  let homeB: string;
  let newKey: string;

  beforeAll(async () => {
    d = await makeDrill({ encryption: 'key', roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    gate = await heldExportRole(d);
    await d.backup(); // the store, wrapped for the old key
    homeB = await freshHome(d);
    newKey = expectOk(await runCli(homeB, ['New-EncryptionKey'])).json.Key;
    expectOk(
      await runCli(homeB, ['Set-BackupShare', '-Path', d.share, '-EncryptionKey', '-'], { stdin: `${newKey}\n` }),
      'B: Set-BackupShare',
    );
  }, 120_000);
  afterAll(async () => {
    await gate?.release().catch(() => undefined);
    await d?.cleanup();
  });

  const opensWith = async (name: string, key: string): Promise<boolean> => {
    const r = await d.cli(['Test-InfrastructureBackup', '-Name', name, '-EncryptionKey', '-'], { stdin: `${key}\n` });
    return r.code === 0 && r.json?.IsValid === true;
  };

  it('never leaves a backup that says Succeeded opening with neither key', async () => {
    await gate.arm();
    const backup = spawnCli(d.home, ['Start-InfrastructureBackup']);
    await whileRunning(backup, 'the backup exporting its role', gate.held);
    const rewrap = await runCli(homeB, ['Update-BackupEncryption', '-EncryptionKey', '-', '-Confirm:$false'], { stdin: `${d.key}\n` });
    expectOk(rewrap, 'B: Update-BackupEncryption');
    await gate.release();
    const ended = await backup;

    if (ended.exitCode !== 0) {
      // Failed, saying why, and listed as failed (the first backup alone succeeded).
      expect(parseErrors(String(ended.stderr)).map((e) => e.ErrorId)).toEqual(['RepositoryRewrapped']);
      const listed = list(expectOk(await d.cli(['Get-InfrastructureBackup'])).json);
      expect(listed.map((b) => b.Status).sort()).toEqual(['Failed', 'Succeeded']);
      return;
    }
    const made = JSON.parse(String(ended.stdout));
    expect(made.Status).toBe('Succeeded');
    const opens = { oldKey: await opensWith(made.Name, d.key!), newKey: await opensWith(made.Name, newKey) };
    expect(opens, `backup ${made.Name}, committed by A after B's re-wrap`).not.toEqual({ oldKey: false, newKey: false });
  }, 180_000);
});

/**
 * The other window: machine A's backup lists (and checks the store's wraps, still for its key)
 * after B's re-wrap listed the backups, and before B writes the store's wraps for the new key
 * alone. B then has to see it: it lists the backups again once it wrote, and writes back the wraps
 * a backup it had not seen needs. The backup runs whole on A just before B's last write of
 * config.xml, which a Target around the share holds for it.
 */
describe('a backup that lists between the re-wrap listing the backups and writing the store', () => {
  let d: Drill;
  beforeAll(async () => {
    d = await makeDrill({ encryption: 'key', roles: false });
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files]);
    await d.backup();
  }, 120_000);
  afterAll(async () => d?.cleanup());

  it('keeps the store wrapped for the key that backup is encrypted for, and says so', async () => {
    const share = new LocalFolderTarget(d.share);
    let configWrites = 0;
    let made: { Name: string } | undefined;
    const beside: Target = new Proxy(share, {
      get(t, prop) {
        const value = Reflect.get(t, prop, t);
        if (prop !== 'write') return typeof value === 'function' ? value.bind(t) : value;
        return async (p: string, ...rest: unknown[]) => {
          // The first write adds the new key's wrap; the second drops the old key's.
          if (p === 'AzsRepository/config.xml' && ++configWrites === 2) made = await d.backup();
          return (value as Target['write']).apply(t, [p, ...rest] as Parameters<Target['write']>);
        };
      },
    });
    const newKey = expectOk(await d.cli(['New-EncryptionKey'])).json;
    const outcome = await rewrapJob({
      home: await freshHome(d),
      target: beside,
      sharePath: d.share,
      oldMaterial: { kind: 'Key', keyId: d.keyId!, key: Buffer.from(d.key!, 'base64') },
      recipients: [{ kind: 'Key', keyId: newKey.KeyId, key: Buffer.from(newKey.Key, 'base64') }],
      confirm: async () => true,
    });
    expect(made, 'the backup ran beside the re-wrap').toBeDefined();

    const opens = async (key: string) =>
      (await d.cli(['Test-InfrastructureBackup', '-Name', made!.Name, '-EncryptionKey', '-'], { stdin: `${key}\n` })).json?.IsValid ===
      true;
    expect(await opens(d.key!), `backup ${made!.Name} with the old key`).toBe(true);
    expect({ keptFor: outcome.repositoryKeptFor, keptBy: outcome.repositoryKeptBy }).toEqual({
      keptFor: [d.keyId!.toUpperCase()],
      keptBy: [made!.Name],
    });
  }, 180_000);
});
