// Usage: node scripts/bench-zstd.cjs JSON_FILE RANDOM_FILE (e.g. a bench corpus kept with --keep: corpus/json/records-0010.json corpus/blobs/blob-0011.bin)
// zstd level 1 as the sealer ran it (compress with level) against level 1 with hashLog 12 (compress2),
// on 1 MiB pieces of the bench corpus's JSON and of its random blobs, alternating, in one process.
if (process.argv.length < 4) {
  console.error('Usage: node scripts/bench-zstd.cjs JSON_FILE RANDOM_FILE');
  process.exit(2);
}
const b = require('zstd-napi/binding.js');
const fs = require('fs');
const load = (f) => { const d = fs.readFileSync(f).subarray(0, 16 << 20); const s = Buffer.from(new SharedArrayBuffer(d.length)); d.copy(s); return s; };
const sets = { json: load(process.argv[2]), blob: load(process.argv[3]) };
const out = Buffer.alloc(2 << 20);
const A = new b.CCtx();
const B = new b.CCtx(); B.setParameter(b.CParameter.compressionLevel, 1); B.setParameter(b.CParameter.hashLog, 12);
const ways = { level1: (c) => A.compress(out, c, 1), hashLog12: (c) => B.compress2(out, c) };
for (const [name, data] of Object.entries(sets)) {
  const pieces = []; for (let i = 0; i + (1 << 20) <= data.length; i += 1 << 20) pieces.push(data.subarray(i, i + (1 << 20)));
  const speed = {}, size = {};
  for (let round = 0; round < 10; round++) for (const [w, f] of Object.entries(ways)) {
    let s = 0; const t = process.hrtime.bigint(); for (const p of pieces) s += f(p);
    (speed[w] ??= []).push(pieces.length / (Number(process.hrtime.bigint() - t) / 1e9)); size[w] = s / (pieces.length << 20);
  }
  for (const w of Object.keys(ways)) { const v = speed[w].sort((x, y) => x - y); console.log(name, w, 'MiB/s median', v[5].toFixed(0), 'range', v[0].toFixed(0), '-', v[9].toFixed(0), 'ratio', size[w].toFixed(4)); }
}
