import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { createProvider, PROVIDER_NAMES } from '../../src/providers/index.js';
import type { Provider, ProviderDescription, ProviderName, RoleDefinition } from '../../src/providers/provider.js';
import { findPostgresBin, startPostgres, type TestPostgres } from '../support/postgres.js';
import { buildDatabase, buildTree, exportAll, halfThenFail, snapshotDatabase, snapshotTree } from '../support/provider-fixtures.js';

/**
 * One suite for every provider: what the engine relies on, asserted the same way for each.
 * A fixture knows how to make its provider's data, how to picture it for comparison, where a fresh
 * restore goes, and what a broken registration looks like.
 */

interface Fixture {
  role: RoleDefinition;
  description: ProviderDescription;
  /** A picture of the data at the role's own location, or at `destination` when given. */
  snapshot(destination?: string): Promise<unknown>;
  /** A destination (ctx.destination) holding nothing yet. */
  freshDestination(): Promise<string>;
  /** A registration whose export must fail, and what the error must say. */
  broken: { role: RoleDefinition; errorId: string; message: RegExp };
  /**
   * Providers that stream into the destination cannot promise to leave it untouched; those whose
   * program is transactional anyway (pg_restore --single-transaction) still do.
   */
  failedImportKeepsData: boolean;
  cleanup(): Promise<void>;
}

interface Case {
  name: ProviderName;
  skip?: string;
  streamsIntoDestination: boolean;
  setup(tmp: string): Promise<Fixture>;
}

let counter = 0;
const fresh = (tmp: string, what: string): string => path.join(tmp, `restore-${++counter}`, what);

const cases: Case[] = [
  {
    name: 'directory',
    streamsIntoDestination: false,
    async setup(tmp) {
      const root = path.join(tmp, 'pki');
      await fs.mkdir(root);
      await buildTree(root);
      return {
        role: { name: 'CA', provider: 'directory', restoreOrder: 1, path: root },
        description: { provider: 'directory', source: root },
        snapshot: (d) => snapshotTree(d ?? root, { symlinkTimes: true }),
        freshDestination: async () => fresh(tmp, 'pki'),
        broken: {
          role: { name: 'CA', provider: 'directory', restoreOrder: 1, path: path.join(tmp, 'no-such-folder') },
          errorId: 'DirectoryNotFound',
          message: /no-such-folder.*cannot be read/,
        },
        failedImportKeepsData: true,
        cleanup: async () => undefined,
      };
    },
  },
  {
    name: 'sqlite',
    streamsIntoDestination: false,
    async setup(tmp) {
      const file = path.join(tmp, 'rm.db');
      buildDatabase(file, 'wal', 2);
      return {
        role: { name: 'ResourceManager', provider: 'sqlite', restoreOrder: 2, path: file },
        description: { provider: 'sqlite', source: file },
        snapshot: async (d) => snapshotDatabase(d ?? file),
        freshDestination: async () => fresh(tmp, 'rm.db'),
        broken: {
          role: { name: 'ResourceManager', provider: 'sqlite', restoreOrder: 2, path: path.join(tmp, 'missing.db') },
          errorId: 'SqliteDatabaseNotFound',
          message: /missing\.db.*cannot be read/,
        },
        failedImportKeepsData: true,
        cleanup: async () => undefined,
      };
    },
  },
  {
    name: 'command',
    streamsIntoDestination: true,
    async setup(tmp) {
      const root = path.join(tmp, 'config');
      await fs.mkdir(root);
      await buildTree(root);
      // The import command honours a side-by-side destination through AZSBACKUP_DESTINATION.
      const importScript = `d="\${AZSBACKUP_DESTINATION:-${root}}"; mkdir -p "$d" && exec tar -xpf - -C "$d"`;
      return {
        role: {
          name: 'Configuration',
          provider: 'command',
          restoreOrder: 3,
          exportCommand: ['tar', '-C', root, '-cf', '-', '.'],
          importCommand: ['sh', '-c', importScript],
          timeoutSeconds: 60,
        },
        description: { provider: 'command', source: 'tar' },
        snapshot: (d) => snapshotTree(d ?? root, { symlinkTimes: true }),
        freshDestination: async () => fresh(tmp, 'config'),
        broken: {
          role: {
            name: 'Configuration',
            provider: 'command',
            restoreOrder: 3,
            exportCommand: ['sh', '-c', 'echo "snapshot store is locked" >&2; exit 3'],
            importCommand: ['true'],
          },
          errorId: 'CommandProviderFailed',
          message: /'sh'.*exited with code 3.*snapshot store is locked/,
        },
        failedImportKeepsData: false,
        cleanup: async () => undefined,
      };
    },
  },
  {
    name: 'postgres',
    streamsIntoDestination: true,
    skip: findPostgresBin() ? undefined : 'PostgreSQL is not installed (apt-get install -y postgresql)',
    async setup() {
      const pg: TestPostgres = await startPostgres();
      const source = await pg.createDatabase('identity');
      await pg.sql(
        'identity',
        `
        CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, avatar bytea, created timestamptz NOT NULL);
        CREATE INDEX users_name ON users(name);
        INSERT INTO users (name, avatar, created)
          SELECT 'user ' || i || ' ñ', decode(md5(i::text), 'hex'), timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour'
          FROM generate_series(1, 500) AS i;
        CREATE TABLE settings (k text PRIMARY KEY, v jsonb);
        INSERT INTO settings VALUES ('tenant', '{"a": [1, 2, 3]}'), ('empty', NULL);
      `,
      );
      let n = 0;
      const picture = async (db: string): Promise<unknown> => ({
        users: await pg.sql(db, "SELECT id, name, encode(avatar, 'hex'), created FROM users ORDER BY id"),
        settings: await pg.sql(db, 'SELECT k, v FROM settings ORDER BY k'),
        sequence: await pg.sql(db, 'SELECT last_value FROM users_id_seq'),
        indexes: await pg.sql(db, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"),
      });
      return {
        role: { name: 'Identity', provider: 'postgres', restoreOrder: 0, connectionString: source },
        description: { provider: 'postgres', source: `postgresql://${pg.user}@127.0.0.1:${pg.port}/identity` },
        snapshot: (d) => picture(d ? new URL(d).pathname.slice(1) : 'identity'),
        freshDestination: () => pg.createDatabase(`restored_${++n}`),
        broken: {
          role: { name: 'Identity', provider: 'postgres', restoreOrder: 0, connectionString: pg.urlFor('no_such_db') },
          errorId: 'PostgresProviderFailed',
          message: /pg_dump.*exited with code 1.*no_such_db.*does not exist/s,
        },
        failedImportKeepsData: true,
        cleanup: () => pg.stop(),
      };
    },
  },
];

// The registry of providers (PROVIDER_NAMES) decides what runs: a provider registered without a
// case here fails this test, so a new provider is tested by registering it and adding its fixture.
it('every registered provider has a conformance case', () => {
  expect(cases.map((c) => c.name).sort()).toEqual([...PROVIDER_NAMES].sort());
});

describe.each(PROVIDER_NAMES.map((name) => cases.find((c) => c.name === name)!))('$name provider', (c) => {
  let tmp: string;
  let fx: Fixture;
  let provider: Provider;

  beforeAll(async () => {
    if (c.skip) return;
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), `azs-conf-${c.name}-`));
    fx = await c.setup(tmp);
    provider = await createProvider(fx.role);
  });
  afterAll(async () => {
    if (c.skip) return;
    await fx?.cleanup();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it.skipIf(c.skip)('describes itself without secrets', () => {
    expect(provider.describe()).toEqual(fx.description);
    expect(JSON.stringify(provider.describe())).not.toMatch(/password|:[^/@]+@/i);
    expect(provider.streamsIntoDestination).toBe(c.streamsIntoDestination);
  });

  it.skipIf(c.skip)('round-trips export → import into a fresh destination exactly', async () => {
    const before = await fx.snapshot();
    const bytes = await exportAll(provider);
    expect(bytes.length).toBeGreaterThan(0);
    const dest = await fx.freshDestination();
    await provider.import(Readable.from([bytes]), { destination: dest });
    expect(await fx.snapshot(dest)).toEqual(before);
    // Exporting did not disturb the source.
    expect(await fx.snapshot()).toEqual(before);
  });

  it.skipIf(c.skip)(
    'hands each chunk of a recycling stream back at most once, and only when done with it: overwriting it then changes nothing',
    async () => {
      const before = await fx.snapshot();
      const bytes = await exportAll(provider);
      // Odd-sized chunks, so that headers and records straddle them.
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += 1021) chunks.push(Buffer.from(bytes.subarray(at, at + 1021)));
      const handedBack = new Set<Buffer>();
      const recycle = (chunk: Buffer): void => {
        expect(handedBack.has(chunk)).toBe(false);
        handedBack.add(chunk);
        chunk.fill(0xee); // what the producer's next output would do to it
      };
      // One chunk at a time, so a chunk can be handed back before the next arrives.
      async function* paced(): AsyncGenerator<Buffer> {
        for (const chunk of chunks) {
          yield chunk;
          for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
        }
      }
      const dest = await fx.freshDestination();
      await provider.import(Object.assign(Readable.from(paced()), { recycle }), { destination: dest });
      expect(await fx.snapshot(dest)).toEqual(before);
      expect([...handedBack].every((c) => chunks.includes(c))).toBe(true);
      // Those that feed a program hand back every chunk once the program's pipe has taken it.
      if (c.name !== 'sqlite') expect(handedBack.size).toBe(chunks.length);
    },
  );

  it.skipIf(c.skip)('imports over the existing data in place', async () => {
    const before = await fx.snapshot();
    const bytes = await exportAll(provider);
    await provider.import(Readable.from([bytes]));
    expect(await fx.snapshot()).toEqual(before);
  });

  it.skipIf(c.skip)('a stream that fails half-way rejects the import and leaves the destination as it was', async () => {
    const before = await fx.snapshot();
    const bytes = await exportAll(provider);
    await expect(provider.import(halfThenFail(bytes, 'connection to the share was reset'))).rejects.toThrow(
      /connection to the share was reset/,
    );
    if (fx.failedImportKeepsData) {
      expect(await fx.snapshot()).toEqual(before);
    } else {
      // The program applied bytes as they came, and nothing in between can stage them. This is why
      // the provider says streamsIntoDestination: the engine verifies the whole role file (every
      // chunk authenticated, last chunk seen) before it calls import(), so a broken file never
      // reaches such a provider.
      expect(provider.streamsIntoDestination).toBe(true);
    }
    if (fx.role.path) {
      // No staging or aside folders are left next to the destination.
      const siblings = await fs.readdir(path.dirname(fx.role.path));
      expect(siblings.filter((s) => s.includes('azs-'))).toEqual([]);
    }
  });

  it.skipIf(c.skip)('a stream that failed before the import began rejects it at once and changes nothing', async () => {
    // The engine decrypts as soon as the stream exists: a damaged first chunk can fail it while the
    // provider still prepares, before any 'error' listener of the provider is attached.
    const before = await fx.snapshot();
    const failed = new PassThrough();
    failed.on('error', () => {});
    failed.destroy(
      new AzsError('Chunk 0 of the role file did not authenticate.', { errorId: 'ChunkAuthenticationFailed', category: 'InvalidData' }),
    );
    await new Promise((resolve) => setImmediate(resolve));
    const err = await provider.import(failed).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ errorId: 'ChunkAuthenticationFailed' });
    expect(await fx.snapshot()).toEqual(before);
  });

  it.skipIf(c.skip || c.streamsIntoDestination)(
    'a provider that stages asks beforeCommit() once all data is in, and a refusal leaves the destination as it was',
    async () => {
      const before = await fx.snapshot();
      const bytes = await exportAll(provider);
      const dest = await fx.freshDestination();
      const refusal = new AzsError('A later role of this backup did not authenticate.', {
        errorId: 'ChunkAuthenticationFailed',
        category: 'InvalidData',
      });
      let asked = 0;
      const source = Readable.from([bytes]);
      let ended = false;
      source.on('end', () => {
        ended = true;
      });
      const err = await provider
        .import(source, {
          destination: dest,
          beforeCommit: async () => {
            asked++;
            // Staged and verified: every byte was read, and the destination is not there yet.
            expect(ended).toBe(true);
            await expect(fs.stat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
            throw refusal;
          },
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBe(refusal);
      expect(asked).toBe(1);
      await expect(fs.stat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await fs.readdir(path.dirname(dest))).filter((s) => s.includes('azs-'))).toEqual([]);

      // Over existing data too, and a beforeCommit that resolves lets the import finish as usual.
      const edited = await provider
        .import(Readable.from([bytes]), {
          beforeCommit: async () => {
            throw refusal;
          },
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(edited).toBe(refusal);
      expect(await fx.snapshot()).toEqual(before);
      await provider.import(Readable.from([bytes]), {
        destination: dest,
        beforeCommit: async () => {
          asked++;
        },
      });
      expect(asked).toBe(2);
      expect(await fx.snapshot(dest)).toEqual(before);
    },
  );

  it.skipIf(c.skip)('a failing export errors clearly', async () => {
    const broken = await createProvider(fx.broken.role);
    const err = await exportAll(broken).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AzsError);
    expect(err).toMatchObject({ errorId: fx.broken.errorId });
    expect((err as AzsError).message).toMatch(fx.broken.message);
    expect((err as AzsError).recommendedAction).toBeTruthy();
  });
});
