// The bench's deterministic corpus and its measures, shared by the throughput bench (bench.ts) and
// its retention mode (bench-retention.ts), which edits the same corpus between rounds.
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A deterministic byte stream: AES-256-CTR of zeros under a fixed key. */
export function prng(seed: string) {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  return (n: number) => cipher.update(Buffer.alloc(n));
}

const words = ['compute', 'storage', 'network', 'identity', 'keyvault', 'subscription', 'offer', 'plan', 'quota', 'region'];

/** JSON records, one a line, each from 16 bytes of `rand`, until they pass `atLeast` bytes; ends with a newline. */
export function jsonRecords(rand: (n: number) => Buffer, atLeast: number): string {
  const records: string[] = [];
  let bytes = 0;
  while (bytes < atLeast) {
    const r = rand(16);
    const rec = JSON.stringify({
      id: r.toString('hex'),
      type: words[r[0]! % 10],
      name: `${words[r[1]! % 10]}-${r.readUInt16BE(2)}`,
      tags: { env: r[4]! % 2 ? 'prod' : 'dev', owner: `team${r[5]! % 16}` },
      quota: r.readUInt32BE(6) % 100000,
      enabled: r[10]! % 3 !== 0,
      created: new Date(1.7e12 + r.readUInt32BE(11) * 1000).toISOString(),
    });
    records.push(rec);
    bytes += rec.length + 1;
  }
  return `${records.join('\n')}\n`;
}

/** Small configuration-like files: 2 KiB of `rand` in base64. */
export const smallFile = (rand: (n: number) => Buffer) => rand(2048).toString('base64');

/** ~60% JSON records (compressible), ~38% random blobs (incompressible), ~2% small files. */
export function makeCorpus(corpus: string, total: number): void {
  const rand = prng('azsbackup bench corpus v1');
  mkdirSync(join(corpus, 'json'), { recursive: true });
  mkdirSync(join(corpus, 'blobs'), { recursive: true });
  mkdirSync(join(corpus, 'small'), { recursive: true });
  let jsonBytes = 0;
  for (let f = 0; jsonBytes < total * 0.6; f++) {
    const text = jsonRecords(rand, 8 * 1024 * 1024);
    writeFileSync(join(corpus, 'json', `records-${String(f).padStart(4, '0')}.json`), text);
    jsonBytes += text.length;
  }
  let blobBytes = 0;
  for (let f = 0; blobBytes < total * 0.38; f++) {
    const n = Math.min(16 * 1024 * 1024, Math.ceil(total * 0.38 - blobBytes));
    writeFileSync(join(corpus, 'blobs', `blob-${String(f).padStart(4, '0')}.bin`), rand(n));
    blobBytes += n;
  }
  const small = Math.max(1, Math.floor((total * 0.02) / 4096));
  for (let f = 0; f < small; f++) writeFileSync(join(corpus, 'small', `item-${f}.cfg`), smallFile(rand));
}

/** Bytes of the files under `p` (or of `p`), as stored: what a share or repository folder holds. */
/**
 * Reads every regular file under `p` once, so that the timed run that follows finds them in the
 * page cache whatever ran before it. borg drops the files it reads from the cache
 * (posix_fadvise DONTNEED: after `borg create`, fincore shows none of the corpus resident), so
 * without this the tool run after borg read the corpus from disk: on the 2-core VM our first
 * backup of 500 MB took 2.2-2.7 s after borg against 1.6-1.8 s otherwise, with 0.5 s more CPU,
 * and the rotating order put us after borg in five rounds of seven while restic never was.
 */
export function warmUp(p: string, buffer: Buffer = Buffer.allocUnsafe(1 << 20)): void {
  const st = lstatSync(p);
  if (st.isDirectory()) for (const entry of readdirSync(p)) warmUp(join(p, entry), buffer);
  else if (st.isFile()) {
    const fd = openSync(p, 'r');
    try {
      while (readSync(fd, buffer, 0, buffer.length, null) > 0);
    } finally {
      closeSync(fd);
    }
  }
}

export function treeSize(p: string): number {
  const st = lstatSync(p);
  return st.isDirectory() ? readdirSync(p).reduce((n, e) => n + treeSize(join(p, e)), 0) : st.size;
}
