import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeCatalog, decodeCatalog } from '../../src/repository/catalog.js';
import { ChunkIndex } from '../../src/repository/chunk-index.js';
import { ChunkRefList } from '../../src/repository/chunk-refs.js';
import { ChunkIdSet } from '../../src/repository/id-set.js';
import { decodeIndexFile, writeIndexFiles } from '../../src/repository/index-file.js';
import { deriveRepositoryKeys } from '../../src/repository/keys.js';
import { RepositoryLayout } from '../../src/repository/layout.js';
import { decodeLocations, encodeLocations, visitLocations } from '../../src/repository/locations.js';
import { PackEntryList, parsePackTail, packHeader, packTail, PACK_HEADER_BYTES } from '../../src/repository/pack-format.js';
import type { ChunkLocation } from '../../src/repository/pack-reader.js';
import { LocalFolderTarget } from '../../src/targets/local.js';

// The compact containers a backup keeps its per-chunk bookkeeping in, instead of an object and a
// Buffer per chunk: they must behave exactly as the arrays, Sets and Maps they replace.

const id = (label: string | number) => createHash('sha256').update(String(label)).digest();
const hex = (b: Buffer) => b.toString('hex');

describe('ChunkIdSet', () => {
  it('adds, finds and counts ids; an id added twice keeps its number', () => {
    const set = new ChunkIdSet();
    expect(set.size).toBe(0);
    expect(set.has(id(1))).toBe(false);
    expect(set.add(id(1))).toBe(0);
    expect(set.add(id(2))).toBe(1);
    expect(set.add(id(1))).toBe(0);
    expect(set.size).toBe(2);
    expect(set.has(id(1))).toBe(true);
    expect(set.has(id(3))).toBe(false);
    expect(set.indexOf(id(2))).toBe(1);
    expect(set.idAt(1).equals(id(2))).toBe(true);
  });

  it('copies what it is given: changing the caller’s buffer afterwards changes nothing', () => {
    const set = new ChunkIdSet();
    const given = Buffer.from(id('x'));
    set.add(given);
    given.fill(0);
    expect(set.has(id('x'))).toBe(true);
    expect(set.has(given)).toBe(false);
  });

  it('tells apart ids that differ in one byte only, first, middle or last, and ids sharing the 4 bytes it hashes', () => {
    const set = new ChunkIdSet();
    const base = id('base');
    set.add(base);
    for (const at of [0, 3, 4, 16, 31]) {
      const other = Buffer.from(base);
      other[at]! ^= 1;
      expect(set.has(other)).toBe(false);
      set.add(other);
      expect(set.has(other)).toBe(true);
    }
    // All in the same probe run: the same first 4 bytes.
    const same = Array.from({ length: 200 }, (_, i) => Buffer.concat([base.subarray(0, 4), id(`tail ${i}`).subarray(0, 28)]));
    for (const s of same) set.add(s);
    expect(set.size).toBe(1 + 5 + 200);
    for (const s of same) expect(set.has(s)).toBe(true);
    expect(set.has(Buffer.concat([base.subarray(0, 4), id('absent').subarray(0, 28)]))).toBe(false);
  });

  it('grows past its first capacity many times over and still finds every id, and none it was not given', () => {
    const set = new ChunkIdSet();
    const all = randomBytes(32 * 200_000);
    for (let i = 0; i < 200_000; i++) set.add(all.subarray(32 * i, 32 * (i + 1)));
    expect(set.size).toBe(200_000);
    for (let i = 0; i < 200_000; i += 997) expect(set.indexOf(all.subarray(32 * i, 32 * (i + 1)))).toBe(i);
    for (let i = 0; i < 100; i++) expect(set.has(randomBytes(32))).toBe(false);
    // 32 bytes an id and 2 slots of 4 bytes, twice that at most just after growing.
    expect(set.bytesAllocated / set.size).toBeLessThanOrEqual(2 * 40 + 1);
  });

  it('deletes ids, every other one still found (probe runs mended), the last one taking the number freed', () => {
    const set = new ChunkIdSet();
    const ids = Array.from({ length: 5000 }, (_, i) => id(`d ${i}`));
    // Crowd one run: ids sharing their first 4 bytes with others.
    const crowded = Array.from({ length: 50 }, (_, i) => Buffer.concat([ids[0]!.subarray(0, 4), id(`c ${i}`).subarray(4)]));
    for (const x of [...ids, ...crowded]) set.add(x);
    const gone = new Set<string>();
    for (let i = 0; i < ids.length; i += 3) {
      expect(set.delete(ids[i]!)).toBe(true);
      gone.add(hex(ids[i]!));
    }
    for (let i = 0; i < crowded.length; i += 2) {
      expect(set.delete(crowded[i]!)).toBe(true);
      gone.add(hex(crowded[i]!));
    }
    expect(set.delete(ids[0]!)).toBe(false);
    expect(set.size).toBe(ids.length + crowded.length - gone.size);
    for (const x of [...ids, ...crowded]) expect(set.has(x)).toBe(!gone.has(hex(x)));
    const numbers = new Set<number>();
    for (const x of [...ids, ...crowded]) if (!gone.has(hex(x))) numbers.add(set.indexOf(x));
    expect([...numbers].sort((a, b) => a - b)).toEqual(Array.from({ length: set.size }, (_, n) => n));
    for (const n of numbers) expect(set.indexOf(set.idAt(n))).toBe(n);
    // Deleted ids can come back.
    set.add(ids[0]!);
    expect(set.has(ids[0]!)).toBe(true);
  });

  it('clears, keeping nothing', () => {
    const set = new ChunkIdSet();
    for (let i = 0; i < 100; i++) set.add(id(i));
    set.clear();
    expect(set.size).toBe(0);
    expect(set.has(id(5))).toBe(false);
    set.add(id(5));
    expect(set.indexOf(id(5))).toBe(0);
  });

  it('adds an id read in place from a larger buffer, as a copy; room reserved up front changes nothing it holds', () => {
    const set = new ChunkIdSet();
    set.reserve(5000);
    const bytes = Buffer.concat([Buffer.alloc(3), id('a'), id('b')]);
    expect(set.addAt(bytes, 3)).toBe(0);
    expect(set.addAt(bytes, 35)).toBe(1);
    expect(set.addAt(id('a'), 0)).toBe(0);
    bytes.fill(0);
    expect(set.has(id('a')) && set.has(id('b'))).toBe(true);
    for (let i = 0; i < 5000; i++) set.add(id(i));
    expect(set.size).toBe(5002);
    expect(set.indexOf(id(4999))).toBe(5001);
    expect(() => set.addAt(bytes, bytes.length - 31)).toThrow(RangeError);
  });

  it('refuses an id that is not 32 bytes', () => {
    expect(() => new ChunkIdSet().add(Buffer.alloc(31))).toThrow(RangeError);
  });
});

describe('ChunkRefList', () => {
  it('keeps ids and lengths in order through growth, copying the ids it is given', () => {
    const list = new ChunkRefList();
    const given = Array.from({ length: 10_000 }, (_, i) => ({ id: id(`r ${i}`), length: i * 7 }));
    for (const r of given) list.push(r.id, r.length);
    given[0]!.id.fill(0);
    expect(list.length).toBe(10_000);
    expect(list.idAt(0).equals(id('r 0'))).toBe(true);
    expect(list.idAt(9999).equals(id('r 9999'))).toBe(true);
    expect(list.lengthAt(9999)).toBe(9999 * 7);
    expect([...list].map((r) => r.length)).toEqual(given.map((r) => r.length));
    expect(() => list.idAt(10_000)).toThrow(RangeError);
    expect(() => list.lengthAt(-1)).toThrow(RangeError);
  });

  it('gives a slice that stays what it was as the list grows, and appends another list', () => {
    const list = new ChunkRefList();
    for (let i = 0; i < 10; i++) list.push(id(i), i);
    const part = list.slice(3, 6);
    for (let i = 10; i < 5000; i++) list.push(id(i), i);
    expect(part.length).toBe(3);
    expect(part.idAt(0).equals(id(3))).toBe(true);
    expect(part.lengthAt(2)).toBe(5);
    const other = new ChunkRefList();
    other.push(id('first'), 1);
    other.append(part);
    expect([...other].map((r) => hex(r.id))).toEqual([hex(id('first')), hex(id(3)), hex(id(4)), hex(id(5))]);
    expect(() => list.slice(4990, 5001)).toThrow(RangeError);
  });
});

describe('PackEntryList', () => {
  it('keeps entries as the table of contents lays them out, and the tail it makes reads back the same', () => {
    const entries = Array.from({ length: 300 }, (_, i) => ({
      chunkId: id(`e ${i}`),
      offset: PACK_HEADER_BYTES + i * 100,
      length: 100,
      plaintextLength: 1000 + i,
    }));
    const list = PackEntryList.of(entries);
    expect(list.length).toBe(300);
    expect([...list]).toEqual(entries);
    expect(list.get(299)).toEqual(entries[299]);
    expect(list.offsetAt(1)).toBe(PACK_HEADER_BYTES + 100);
    const tocKey = randomBytes(32);
    const header = packHeader(randomBytes(32));
    const size = PACK_HEADER_BYTES + 300 * 100;
    const fromList = packTail(tocKey, header, list);
    const fromArray = packTail(tocKey, header, entries);
    expect(fromList.length).toBe(fromArray.length);
    expect(parsePackTail(tocKey, 'p', header, fromList, size + fromList.length)).toEqual(entries);
    expect(parsePackTail(tocKey, 'p', header, fromArray, size + fromArray.length)).toEqual(entries);
  });
});

describe('locations', () => {
  const locations: ChunkLocation[] = Array.from({ length: 1000 }, (_, i) => ({
    chunkId: id(`l ${i}`),
    pack: hex(id(`pack ${i % 7}`)),
    offset: i,
    length: 2 * i,
    plaintextLength: 3 * i,
  }));

  it('a catalog from the index’s table is the catalog from location objects, byte for byte', () => {
    const index = new ChunkIndex();
    for (const l of [...locations].reverse()) index.add(l);
    const refs = new ChunkRefList();
    for (const l of locations) refs.push(l.chunkId, l.plaintextLength);
    const streamLength = locations.reduce((n, l) => n + l.plaintextLength, 0);
    const fromTable = encodeCatalog({ streamLength, chunks: index.locationsOf(refs) });
    expect(fromTable.equals(encodeCatalog({ streamLength, chunks: locations }))).toBe(true);
    expect(decodeCatalog('c', fromTable).chunks).toEqual(locations);
    refs.push(id('not indexed'), 1);
    expect(() => index.locationsOf(refs)).toThrow(/not in the index/);
  });

  it('an index fed encoded bodies holds what add() of each location holds; a chunk in two bodies keeps its first place', () => {
    const first = locations.slice(0, 600);
    const second = [
      ...locations.slice(500).map((l) => ({ ...l, offset: l.offset + 1_000_000 })), // 500-599 again, elsewhere
      { chunkId: id('only in the second'), pack: hex(id('pack 99')), offset: 7, length: 8, plaintextLength: 9 },
    ];
    const fromBodies = new ChunkIndex();
    for (const body of [encodeLocations(first), encodeLocations(second)]) fromBodies.addEncoded(body, (d) => new Error(d));
    const oneByOne = new ChunkIndex();
    for (const l of [...first, ...second]) oneByOne.add(l);
    expect(fromBodies.size).toBe(1001);
    expect([...fromBodies.entries()]).toEqual([...oneByOne.entries()]);
    expect(fromBodies.get(locations[550]!.chunkId)!.offset).toBe(550);
    expect(fromBodies.get(id('only in the second'))).toEqual(second.at(-1));
  });

  it('refuses a damaged body before taking any of it into the index', () => {
    const index = new ChunkIndex();
    const body = encodeLocations(locations);
    body.writeUInt32BE(99, body.length - 16);
    expect(() => index.addEncoded(body, (d) => new Error(d))).toThrow(/entry 999 names a pack it does not list/);
    expect(index.size).toBe(0);
  });

  it('visits nothing of a body that turns out damaged further on', () => {
    const body = encodeLocations(locations);
    body.writeUInt32BE(99, body.length - 16); // the last entry's pack ordinal
    let visited = 0;
    expect(() =>
      visitLocations(
        body,
        (d) => new Error(d),
        () => visited++,
      ),
    ).toThrow(/entry 999 names a pack it does not list/);
    expect(visited).toBe(0);
    expect(() => decodeLocations(body.subarray(0, body.length - 1), (d) => new Error(d))).toThrow(/do not fill/);
  });
});

describe('index files from packs', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'azs-compact-'));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('splits and orders as from location objects: same files, each sorted by id, whatever the input order of packs', async () => {
    const target = new LocalFolderTarget(dir);
    const layout = new RepositoryLayout();
    const keys = deriveRepositoryKeys(Buffer.alloc(32, 9));
    // 60,000 entries in 900 packs: more than one file.
    const packs = Array.from({ length: 900 }, (_, p) => {
      const entries = new PackEntryList();
      for (let i = 0; i < 67 - (p % 3); i++) entries.push(id(`${p}/${i}`), PACK_HEADER_BYTES + i * 500, 500, 4000);
      return { hash: hex(id(`pack ${p}`)), entries };
    });
    const locations = packs.flatMap((p) => [...p.entries].map((e) => ({ ...e, pack: p.hash })));
    const read = async (names: string[]) =>
      Promise.all(
        names.map(async (n) =>
          decodeIndexFile(keys, n, await fsp.readFile(path.join(dir, layout.indexPath(n)))).map(
            (l) => `${hex(l.chunkId)} ${l.pack} ${l.offset} ${l.length} ${l.plaintextLength}`,
          ),
        ),
      );
    const fromPacks = await read(await writeIndexFiles(target, layout, keys, [...packs].reverse()));
    const fromLocations = await read(await writeIndexFiles(target, layout, keys, locations));
    expect(fromPacks.length).toBeGreaterThan(1);
    expect(fromPacks.map((f) => f.length)).toEqual(fromLocations.map((f) => f.length));
    // Files are written in the order their parts were cut; compare them part by part.
    expect(fromPacks).toEqual(fromLocations);
    for (const f of fromPacks) {
      expect(f).toEqual([...f].sort());
    }
    expect(fromPacks.flat().length).toBe(locations.length);
  });
});
