import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storeMembers } from '../../src/engine/member-chunks.js';
import type { ArchiveExport, ArchiveMember } from '../../src/providers/provider.js';
import { ChunkIndex } from '../../src/repository/chunk-index.js';
import { ChunkStore } from '../../src/repository/chunk-store.js';
import { chunkIdOf, deriveRepositoryKeys } from '../../src/repository/keys.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { LocalFolderTarget } from '../../src/targets/local.js';
import { pseudoRandomBytes } from '../support/pseudo-random.js';

/**
 * Whose failure a member-by-member store reports: a failure to read the folder is the archive's to
 * explain (DirectoryExportFailed, "Reading the folder ... failed"), while a failure to store is
 * the share's or the packing thread's own, and must reach the operator as such (an SMB server
 * that died mid-backup once surfaced as "Reading the folder ... failed: Premature close").
 */

const keys = deriveRepositoryKeys(Buffer.alloc(32, 5));
const layout = new RepositoryLayout();
const SMALL = { minSize: 4096, normalSize: 16384, maxSize: 65536 };

function member(i: number, data: () => Readable): ArchiveMember {
  return {
    name: Buffer.from(`f${i}`),
    kind: 'file',
    stat: { size: 200_000, mtimeNs: 0n, ctimeNs: 0n, ino: BigInt(i), dev: 1n, mode: 0o100644, uid: 0, gid: 0 },
    header: Buffer.alloc(512, i),
    padding: 0,
    data,
  };
}

function archiveOf(members: ArchiveMember[]): ArchiveExport {
  return {
    members: (async function* () {
      yield* members;
    })(),
    trailer: Buffer.alloc(1024),
    explain: (e) => new Error(`Reading the folder failed: ${(e as Error).message}`),
  };
}

describe('storing an archive member by member', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-members-'));
  });
  afterEach(async () => fs.rm(dir, { recursive: true, force: true }));

  it('stores each member as a chunker cuts it, a member below the minimum chunk as its one chunk', async () => {
    const store = new ChunkStore(new LocalFolderTarget(dir), layout, keys, new ChunkIndex(), { params: SMALL });
    // Header and data together: a folder (no data), below, at and above the minimum, several chunks.
    const sizes = [undefined, 0, 100, SMALL.minSize - 513, SMALL.minSize - 512, SMALL.minSize + 3000, 40_000];
    const members = sizes.map((size, i) => {
      const bytes = size === undefined ? undefined : pseudoRandomBytes(`m${i}`, size);
      // Small data comes whole (a Buffer), as the walk gives it; the largest as a stream of pieces.
      const data = bytes && (size! < 30_000 ? () => bytes : () => Readable.from([bytes.subarray(0, 7000), bytes.subarray(7000)]));
      return { ...member(i, data as () => Readable), data, bytes };
    });
    const expected: Buffer[] = [];
    for (const m of members) {
      const chunker = store.chunker();
      const out: Buffer[] = [];
      chunker.write(m.header, out);
      if (m.bytes) chunker.write(m.bytes, out);
      chunker.end(out);
      expected.push(...out.map((c) => Buffer.from(c)));
    }
    expected.push(Buffer.alloc(1024));
    try {
      const { stream } = await storeMembers(store, archiveOf(members), undefined, () => {});
      expect(expected.length).toBeGreaterThan(members.length + 2);
      expect(Array.from({ length: stream.chunks.length }, (_, c) => stream.chunks.lengthAt(c))).toEqual(expected.map((c) => c.length));
      for (let c = 0; c < expected.length; c++) expect(stream.chunks.idAt(c).equals(chunkIdOf(keys, expected[c]!))).toBe(true);
    } finally {
      await store.abort();
      await store.dispose();
    }
  });

  it("reports a failure to store as the share's own error, not as the folder's", async () => {
    const closed = Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    class DyingShare extends LocalFolderTarget {
      override async write(p: string, data: Readable): Promise<{ bytes: number }> {
        if (!p.includes('.pending-')) return super.write(p, data);
        data.resume();
        throw closed;
      }
    }
    const store = new ChunkStore(new DyingShare(dir), layout, keys, new ChunkIndex(), { params: SMALL, packBytes: 256 * 1024 });
    try {
      const files = Array.from({ length: 40 }, (_, i) => member(i, () => Readable.from([pseudoRandomBytes(`f${i}`, 200_000)])));
      const err = await storeMembers(store, archiveOf(files), undefined, () => {}).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBe(closed);
    } finally {
      await store.abort();
      await store.dispose();
    }
  });

  it("explains a failure to read a member as the folder's", async () => {
    const store = new ChunkStore(new LocalFolderTarget(dir), layout, keys, new ChunkIndex(), { params: SMALL });
    try {
      const unreadable = member(1, () =>
        Readable.from(
          (async function* () {
            yield pseudoRandomBytes('start', 1000);
            throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
          })(),
        ),
      );
      const err = await storeMembers(store, archiveOf([unreadable]), undefined, () => {}).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as Error).message).toBe('Reading the folder failed: EIO: i/o error, read');
    } finally {
      await store.abort();
      await store.dispose();
    }
  });
});
