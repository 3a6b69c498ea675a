import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProvider } from '../../src/providers/index.js';
import type { Provider } from '../../src/providers/provider.js';
import { craftTar, paxBody } from '../support/provider-fixtures.js';

/**
 * The directory provider lets GNU tar make the FIFOs an archive holds, and removes them once it is
 * done, by the path the scanner read. A FIFO entry used not to be shown to the EntryGuard. A pax
 * path with a NUL in it is cut at the NUL by GNU tar (a harmless FIFO 'x', exit 0), while the
 * provider kept the whole value, and path.normalize() folds the NUL component away:
 * 'x\0/../../../outside/victim' became '../../outside/victim', and fs.rm() deleted that file,
 * outside the destination. Whoever can make an archive that reaches the provider (a certificate
 * backup restored with -AllowUnauthenticated, made by anyone holding the public .cer) could delete
 * any file the restore can. Now the guard refuses the archive.
 */

let tmp: string;
let dest: string;
let outside: string;
let provider: Provider;

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-audit-fifo-'));
  dest = path.join(tmp, 'root', 'pki');
  outside = path.join(tmp, 'outside');
  await fs.mkdir(dest, { recursive: true });
  await fs.mkdir(outside);
  await fs.writeFile(path.join(dest, 'ca.crt'), 'the current CA\n');
  await fs.writeFile(path.join(outside, 'victim'), 'the operator’s file outside the destination\n');
  provider = await createProvider({ name: 'CA', provider: 'directory', restoreOrder: 1, path: dest });
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('a FIFO entry in a restored archive', () => {
  it('never removes anything outside the destination, whatever its path says', async () => {
    // The staging folder is <tmp>/root/.pki.azs-staging-<id>: '../../outside/victim' from it is <tmp>/outside/victim.
    const archive = craftTar([
      { name: 'ok.txt', type: 'file', body: 'fine' },
      { name: 'PaxHeader/x', type: 'file', flag: 'x', body: paxBody({ path: 'x\0/../../../outside/victim' }) },
      { name: 'x', type: 'file', flag: '6' },
    ]);
    await provider.import(Readable.from([archive])).catch(() => undefined);
    expect(await fs.readFile(path.join(outside, 'victim'), 'utf8')).toBe('the operator’s file outside the destination\n');
  });
});
