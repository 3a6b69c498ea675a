import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, resultOf, type CliResult } from '../support/cli.js';

/**
 * An operator who is not root backs up and restores a folder of their own. GNU tar (-p) gives
 * every file its archived mode, set-id bits too: the file is the operator's, so the kernel lets
 * them be set. A restore writes files of 1 MiB and more itself (src/providers/direct-files.ts),
 * and those came back without their set-user-ID and set-group-ID bits, while the same restore
 * without our addons (AZSBACKUP_NATIVE=off) kept them: a service's own set-id helper stopped
 * working after a restore that said Succeeded.
 */

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const MiB = 1024 * 1024;

let root: string;
let data: string;
let key: string;

/** The CLI run as the account nobody, with AZSBACKUP_HOME in the test's folder. */
async function cliAsNobody(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const r = await execa(
    'setpriv',
    [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', process.execPath, CLI, ...args, '--output', 'json'],
    {
      env: { ...cliEnv(path.join(root, 'home'), opts.env), HOME: root },
      extendEnv: false,
      input: opts.stdin ?? '',
      reject: false,
      timeout: 60_000,
    },
  );
  return resultOf(r.exitCode ?? -1, String(r.stdout), String(r.stderr));
}

async function ok(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const r = await cliAsNobody(args, opts);
  if (r.code !== 0) throw new Error(`${args[0]} exited ${r.code}\n${r.stderr}`);
  return r;
}

/** The permission bits of each file of the role, by name. */
async function modes(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(data)).sort()) out[name] = ((await fs.stat(path.join(data, name))).mode & 0o7777).toString(8);
  return out;
}

describe.skipIf(!asRoot)('a restore run by an operator who is not root', () => {
  let name: string;
  let backedUp: Record<string, string>;

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-nonroot-'));
    await fs.chown(root, NOBODY, NOBODY);
    data = path.join(root, 'data');
    await fs.mkdir(data);
    for (const [file, bytes, mode] of [
      ['large-setuid.bin', 2 * MiB, 0o4755],
      ['large-setgid.bin', 2 * MiB, 0o2750],
      ['large-plain.bin', 2 * MiB, 0o640],
      ['small-setuid.sh', 100, 0o4755],
    ] as const) {
      await fs.writeFile(path.join(data, file), randomBytes(bytes));
      await fs.chown(path.join(data, file), NOBODY, NOBODY);
      await fs.chmod(path.join(data, file), mode);
    }
    await fs.chown(data, NOBODY, NOBODY);
    await fs.mkdir(path.join(root, 'share'));
    await fs.chown(path.join(root, 'share'), NOBODY, NOBODY);
    key = (await ok(['New-EncryptionKey'])).json.Key as string;
    await ok(['Set-BackupShare', '-Path', path.join(root, 'share'), '-EncryptionKey', '-'], { stdin: `${key}\n` });
    await ok(['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', data, '-RestoreOrder', '10']);
    backedUp = await modes();
    name = (await ok(['Start-InfrastructureBackup'])).json.Name as string;
  }, 120_000);
  afterAll(async () => fs.rm(root, { recursive: true, force: true }));

  for (const [label, env] of [
    ['with our addons', {}],
    ['without them (AZSBACKUP_NATIVE=off)', { AZSBACKUP_NATIVE: 'off' }],
  ] as [string, Record<string, string>][]) {
    it(`gives large files their set-id bits back, as GNU tar does for small ones (${label})`, async () => {
      for (const file of await fs.readdir(data)) await fs.chmod(path.join(data, file), 0o600);
      await ok(['Restore-AzsBackup', '-Name', name, '-RoleName', 'Files', '-EncryptionKey', '-'], { stdin: `${key}\n`, env });
      expect(await modes()).toEqual(backedUp);
    }, 60_000);
  }
});
