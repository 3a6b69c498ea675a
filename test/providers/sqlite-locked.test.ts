import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createProvider } from '../../src/providers/index.js';
import { buildDatabase, exportAll, sqliteModulePath } from '../support/provider-fixtures.js';

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-sqlite-locked-'));
  // The copy waits 2 s for the lock instead of 30 (the failure is the same, as the message shows).
  process.env.AZSBACKUP_TEST_SQLITE_BUSY_MS = '2000';
});
afterEach(async () => {
  delete process.env.AZSBACKUP_TEST_SQLITE_BUSY_MS;
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Holds the database's exclusive lock until killed, as a service in locking_mode=EXCLUSIVE does while it runs. */
const HOLDER = `
const Database = require(process.argv[2]);
const db = new Database(process.argv[3]);
db.pragma('locking_mode = EXCLUSIVE');
db.exec('BEGIN EXCLUSIVE');
db.exec('UPDATE accounts SET balance = balance');
console.log('held');
setInterval(() => {}, 1000);
`;

// A lock held past the 30 s the copy waits made better-sqlite3's backup end with nothing copied
// and its file removed: the backup failed with ENOENT on a temporary file, blaming the temporary
// folder, its disk and free space, while another program held the database.
it('a database locked past the wait fails as locked, naming the lock, not the temporary folder', async () => {
  const file = path.join(tmp, 'rm.db');
  buildDatabase(file, 'delete', 1);
  const script = path.join(tmp, 'holder.cjs');
  await fs.writeFile(script, HOLDER);
  const holder = execa(process.execPath, [script, sqliteModulePath, file], { reject: false, buffer: false });
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.once('data', () => resolve());
      void holder.then((r) => reject(new Error(`holder exited early: ${String(r.stderr)}`)));
    });
    const provider = await createProvider({ name: 'ResourceManager', provider: 'sqlite', restoreOrder: 1, path: file });
    const failed = await exportAll(provider).then(
      () => undefined,
      (e: unknown) => e as { errorId: string; category: string; message: string; recommendedAction: string },
    );
    expect(failed).toMatchObject({ errorId: 'SqliteDatabaseLocked', category: 'ResourceBusy' });
    expect(failed!.message).toMatch(/locked by another program for longer than 2 s/);
    expect(failed!.message).not.toMatch(/ENOENT|copy\.sqlite/);
    expect(failed!.recommendedAction).not.toMatch(/temporary folder/);
  } finally {
    holder.kill('SIGKILL');
    await holder;
  }
}, 90_000);
