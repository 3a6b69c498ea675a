/**
 * Throughput of the deduplicating store's stages (src/repository) against references run on the
 * same data in the same run, so the load of a shared machine hits both: compare the ratios.
 *
 *   npx esbuild scripts/bench-chunker.ts --bundle --platform=node --format=esm --packages=external \
 *     --outfile=node_modules/.cache/bench-chunker.mjs && node node_modules/.cache/bench-chunker.mjs [--mb 256] [--rounds 3]
 *
 * Stages, each timed in this process over data already in memory:
 *   cut (native)      the C scanner of src/native/content-cut.c (when it compiled)
 *   cut (typescript)  the fallback in src/repository/cdc.ts
 *   cut + id          cutting and HMAC-SHA256 chunk ids: what a backup of unchanged data costs
 *   store             cut, id, zstd -1 per chunk, AES-256-GCM, packs written to a local folder
 *   store again       the same data a second time: everything deduplicates, nothing is written
 * References: `sha256sum FILE` and `zstd -1 -c FILE >/dev/null` as child processes (the file is
 * in the page cache after the first round), and Node's SHA-256 over the same buffer. Each stage's
 * ratio is against the reference named beside it: the cut against Node's SHA-256 of the same
 * buffer (both read every byte once, in this process; coreutils' sha256sum is printed too, but it
 * lacks the SHA extensions OpenSSL uses), the store against zstd -1 (both compress every byte once). Median of the rounds,
 * per wall-clock second and per CPU second: on a machine shared with other work the CPU figures
 * move less (the wall clock counts the time other processes held the cores).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeFindCut } from '../src/repository/cdc-native.js';
import { ChunkIndex } from '../src/repository/chunk-index.js';
import { ChunkStore } from '../src/repository/chunk-store.js';
import { ContentChunker } from '../src/repository/chunker.js';
import { gearTable } from '../src/repository/gear.js';
import { chunkIdOf, deriveRepositoryKeys } from '../src/repository/keys.js';
import { RepositoryLayout } from '../src/repository/layout.js';
import { LocalFolderTarget } from '../src/targets/local.js';

const MiB = 1024 * 1024;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Three parts JSON-like records to one part noise, as the corpus (300 MB JSON, 100 MB random). */
function corpus(bytes: number): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  let n = 0;
  while (total < bytes) {
    const records: string[] = [];
    for (let i = 0; i < 30_000; i++, n++)
      records.push(`{"id":${n},"tenant":"t${n % 97}","user":"u${(n * 7919) % 100_003}","quota":${(n * 31) % 10_000},"on":${n % 5 !== 0}}`);
    const text = Buffer.from(records.join('\n'));
    const noise = createHash('sha256').update(String(n)).digest();
    const random = Buffer.alloc(Math.floor(text.length / 3));
    for (let at = 0; at < random.length; at += 32) createHash('sha256').update(noise).update(String(at)).digest().copy(random, at);
    parts.push(text, random);
    total += text.length + random.length;
  }
  return Buffer.concat(parts).subarray(0, bytes);
}

/** Wall and CPU milliseconds (CPU: user + system of this process, all its threads). */
interface Took {
  wall: number;
  cpu: number;
}

async function time(fn: () => unknown): Promise<Took> {
  const t = process.hrtime.bigint();
  const c = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(c);
  return { wall: Number(process.hrtime.bigint() - t) / 1e6, cpu: (used.user + used.system) / 1000 };
}

/** A reference command's wall time and its CPU time, from bash's `times` (children's user and system). */
function timeCommand(command: string, file: string): Took {
  const t = process.hrtime.bigint();
  const out = execFileSync('bash', ['-c', `${command} "$1" >/dev/null; times`, 'bash', file]).toString();
  const wall = Number(process.hrtime.bigint() - t) / 1e6;
  const children = out.trim().split('\n').at(-1)!;
  const [user, system] = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return { wall, cpu: (user! + system!) * 1000 };
}

function* pieces(data: Buffer, size = 256 * 1024): Generator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

function cutAll(data: Buffer, gear: Uint32Array, implementation: 'auto' | 'typescript'): Buffer[] {
  const chunker = new ContentChunker({ gear, implementation });
  const out: Buffer[] = [];
  for (const p of pieces(data)) chunker.write(p, out);
  chunker.end(out);
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const mb = arg('mb', 256);
  const rounds = arg('rounds', 3);
  const work = mkdtempSync(join(tmpdir(), 'azs-bench-chunker-'));
  try {
    const data = corpus(mb * MiB);
    const file = join(work, 'corpus.bin');
    writeFileSync(file, data);
    const keys = deriveRepositoryKeys(createHash('sha256').update('bench').digest());
    const gear = gearTable(keys.gearSeed);
    const times: Record<string, Took[]> = {};
    const note = (name: string, took: Took) => (times[name] ??= []).push(took);
    let stats = { chunks: 0, stored: 0, newChunksAgain: -1, packs: 0 };

    for (let r = 0; r < rounds; r++) {
      note('sha256sum', timeCommand('sha256sum', file));
      note('zstd -1', timeCommand('zstd -q -1 -c', file));
      note('node sha256', await time(() => createHash('sha256').update(data).digest()));
      if (nativeFindCut()) note('cut (native)', await time(() => cutAll(data, gear, 'auto')));
      note('cut (typescript)', await time(() => cutAll(data, gear, 'typescript')));
      note(
        'cut + id',
        await time(() => {
          for (const c of cutAll(data, gear, 'auto')) chunkIdOf(keys, c);
        }),
      );

      const repo = join(work, `repo${r}`);
      rmSync(repo, { recursive: true, force: true });
      execFileSync('mkdir', ['-p', repo]);
      const store = new ChunkStore(new LocalFolderTarget(repo), new RepositoryLayout(), keys, new ChunkIndex());
      let chunks = 0;
      note(
        'store',
        await time(async () => {
          chunks = (await store.storeStream(pieces(data))).chunks.length;
          stats.packs = (await store.commit()).packs.length;
        }),
      );
      const stored = Number(execFileSync('du', ['-sb', repo]).toString().split('\t')[0]);
      note(
        'store again',
        await time(async () => {
          stats.newChunksAgain = (await store.storeStream(pieces(data))).newChunks;
          await store.commit();
        }),
      );
      stats = { ...stats, chunks, stored };
    }

    const rate = (name: string, kind: keyof Took) => (mb * MiB) / 1e6 / (median(times[name]!.map((t) => t[kind])) / 1000);
    const cell = (name: string, kind: keyof Took, ref?: string) =>
      `${rate(name, kind).toFixed(0).padStart(6)} MB/s` +
      (ref ? ` ${(rate(name, kind) / rate(ref, kind)).toFixed(2).padStart(5)}x` : '       ');
    const row = (name: string, ref?: string) => `${name.padEnd(17)} ${cell(name, 'wall', ref)}   ${cell(name, 'cpu', ref)}   ${ref ?? ''}`;
    console.log(
      `corpus ${mb} MiB (3/4 JSON-like records, 1/4 random), ${rounds} rounds, median; ${process.env.AZSBACKUP_NATIVE === 'off' ? 'addons off' : 'addons on'}`,
    );
    console.log(`${'stage'.padEnd(17)} ${'wall clock'.padEnd(18)}   ${'per CPU second'.padEnd(18)}   ratio against`);
    for (const ref of ['sha256sum', 'zstd -1', 'node sha256']) console.log(row(ref));
    if (times['cut (native)']) console.log(row('cut (native)', 'node sha256'));
    console.log(row('cut (typescript)', 'node sha256'));
    console.log(row('cut + id', 'node sha256'));
    console.log(row('store', 'zstd -1'));
    console.log(row('store again', 'node sha256'));
    console.log(
      `chunks ${stats.chunks} (mean ${(data.length / stats.chunks / 1024).toFixed(0)} KiB), packs ${stats.packs}, ` +
        `stored ${(stats.stored / MiB).toFixed(1)} MiB of ${mb} MiB, new chunks on the second pass: ${stats.newChunksAgain}`,
    );

    for (const n of [5_000, 1_000_000]) {
      const index = new ChunkIndex();
      const id = Buffer.alloc(32);
      for (let i = 0; i < n; i++) {
        id.writeUInt32BE((i * 2654435761) >>> 0, 0);
        id.writeUInt32BE(i, 4);
        index.add({ chunkId: id, pack: `p${i >> 8}`, offset: i, length: i, plaintextLength: i });
      }
      console.log(
        `index of ${n} chunks: ${(index.bytesAllocated / MiB).toFixed(1)} MiB in its arrays, ${(index.bytesAllocated / n).toFixed(0)} bytes per entry`,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
