// npm run bench -- --retention [N] [--size 500M] [--tools azsbackup,restic,borg] [--restores R] [--keep]
//
// What a store costs over time: N rounds (7 by default) of backups of one corpus that changes by
// about 3% between rounds, each round backed up by us (one AZSBACKUP_HOME and one share for all
// rounds, with a retention that prunes nothing), `restic backup` into one repository and `borg
// create --compression zstd,1` into one repository (a new archive each round), on the same corpus
// state. Each round prints every tool's seconds and the bytes its share or repository holds after
// it. After the last round each tool restores the oldest backup (round 1's) R times (3 by
// default), in an order that rotates so that each tool goes first once; the median is reported.
// Every restored tree is compared file by file with round 1's corpus (SHA-256 manifest): ours
// must match every time.
//
// The edits are deterministic (a PRNG per round) and shaped like a server's data changing: runs of
// JSON records rewritten with new lengths or inserted in the middle of files (the bytes after them
// move, so only content-defined chunking finds them again), records appended to some files and
// bytes to a blob, new files, configuration files rewritten and deleted, and a temporary blob that
// lives two rounds. Caches (restic's, borg's, our AZSBACKUP_HOME) are not counted as store bytes.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { jsonRecords, makeCorpus, prng, smallFile, treeSize } from './bench-corpus.js';

export interface TimedRun {
  seconds: number;
  peakRssMB: number;
  cpuSeconds: number;
}

/** What the bench gives this mode: its folders, the corpus size and its helpers to time a command and to call our CLI. */
export interface RetentionBench {
  root: string;
  work: string;
  corpus: string;
  cli: string;
  size: number;
  rounds: number;
  /** How many times each tool restores round 1's backup. */
  restores: number;
  tools: string[];
  /** `reads` are read once before the run starts (bench.ts timed): every tool finds them in the page cache. */
  timed(label: string, command: string, env?: Record<string, string>, reads?: string[]): TimedRun;
  azs(home: string, cmdlet: string, rest: string): string;
}

const MiB = 1024 * 1024;
const KiB = 1024;
const mib = (bytes: number) => (bytes / MiB).toFixed(1);

// ---------------------------------------------------------------------------------------------
// The corpus between rounds

interface Churn {
  /** Bytes written that the corpus did not hold before: edited, appended and new. */
  bytes: number;
  /** Files deleted. */
  deleted: number;
}

type Rand = (n: number) => Buffer;

const listed = (dir: string) =>
  readdirSync(dir)
    .sort()
    .map((name) => join(dir, name));
const below = (rand: Rand, n: number) => rand(4).readUInt32BE(0) % n;

/** `count` distinct members of `list` (all of it if shorter), chosen by `rand`. */
function pick<T>(rand: Rand, list: T[], count: number): T[] {
  const left = [...list];
  const chosen: T[] = [];
  while (chosen.length < count && left.length > 0) chosen.push(left.splice(below(rand, left.length), 1)[0]!);
  return chosen;
}

/** Where the line holding byte `at` ends (the next record starts), or the end of the text. */
function nextLine(text: Buffer, at: number): number {
  const i = text.indexOf(10, at);
  return i < 0 ? text.length : i + 1;
}

/**
 * New records, about `span` bytes, at a record boundary between 10% and 90% of `file`: in place of
 * as many bytes of records (`replace`, the new run differs in length) or inserted before them.
 */
function editRecords(rand: Rand, file: string, span: number, replace: boolean): number {
  const text = readFileSync(file);
  const from = nextLine(text, Math.floor(text.length * (0.1 + (0.8 * below(rand, 1000)) / 1000)));
  const to = replace ? nextLine(text, from + span) : from;
  const fresh = Buffer.from(jsonRecords(rand, span));
  writeFileSync(file, Buffer.concat([text.subarray(0, from), fresh, text.subarray(to)]));
  return fresh.length;
}

/**
 * Changes about 3% of a corpus of `total` bytes, the same way for the same round: 40% of that in
 * edits of 256 KiB in the middle of JSON files, 20% appended, 30% in new files, 5% in rewritten
 * small files; a few small files and the blob added two rounds ago are deleted.
 */
export function churn(corpus: string, round: number, total: number): Churn {
  const rand = prng(`azsbackup bench retention round ${round}`);
  const budget = total * 0.03;
  const [json, blobs, small] = ['json', 'blobs', 'small'].map((d) => listed(join(corpus, d))) as [string[], string[], string[]];
  const smallCount = Math.max(2, Math.round((budget * 0.05) / 2732));
  let bytes = 0;
  const sites = Math.max(2, Math.round((budget * 0.4) / (256 * KiB)));
  for (let i = 0; i < sites; i++) bytes += editRecords(rand, json[below(rand, json.length)]!, 256 * KiB, i % 2 === 0);
  for (const file of pick(rand, json, Math.max(1, Math.round((budget * 0.1) / (128 * KiB))))) {
    const records = jsonRecords(rand, 128 * KiB);
    appendFileSync(file, records);
    bytes += records.length;
  }
  const grown = rand(Math.round(budget * 0.1));
  appendFileSync(blobs.filter((f) => /blob-\d+\.bin$/.test(f)).pop()!, grown);
  const rewritten = pick(rand, small, smallCount);
  const added: [string, Buffer | string][] = [
    [join(corpus, 'json', `records-r${round}.json`), jsonRecords(rand, budget * 0.2)],
    [join(corpus, 'blobs', `blob-r${round}.bin`), rand(Math.round(budget * 0.05))],
    ...Array.from({ length: smallCount }, (_, k): [string, string] => [join(corpus, 'small', `item-r${round}-${k}.cfg`), smallFile(rand)]),
    ...rewritten.map((f): [string, string] => [f, smallFile(rand)]),
  ];
  for (const [file, content] of added) writeFileSync(file, content);
  bytes += grown.length + added.reduce((n, [, content]) => n + content.length, 0);
  const gone = pick(
    rand,
    small.filter((f) => !rewritten.includes(f)),
    Math.max(2, Math.round(small.length * 0.005)),
  );
  const temporary = join(corpus, 'blobs', `blob-r${round - 2}.bin`);
  if (existsSync(temporary)) gone.push(temporary);
  for (const file of gone) rmSync(file);
  return { bytes, deleted: gone.length };
}

/** Every file under `dir`, by its path relative to `dir`, to its SHA-256. */
export function manifest(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string, rel: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(join(d, entry.name), path);
      else
        files.set(
          path,
          createHash('sha256')
            .update(readFileSync(join(d, entry.name)))
            .digest('hex'),
        );
    }
  };
  walk(dir, '');
  return files;
}

/** How the tree at `dir` differs from `expected`: missing, extra and changed files. */
function differences(expected: Map<string, string>, dir: string): string[] {
  if (!existsSync(dir)) return [`${dir} does not exist`];
  const found = manifest(dir);
  const missing = [...expected.keys()].filter((p) => !found.has(p)).map((p) => `missing ${p}`);
  const extra = [...found.keys()].filter((p) => !expected.has(p)).map((p) => `extra ${p}`);
  const changed = [...expected].filter(([p, h]) => found.has(p) && found.get(p) !== h).map(([p]) => `changed ${p}`);
  return [...missing, ...extra, ...changed];
}

// ---------------------------------------------------------------------------------------------
// The three stores, each kept across rounds

interface Store {
  name: string;
  backup(round: number): TimedRun;
  /** Bytes on disk of the share folder or repository. */
  bytes(): number;
  /** Restores round 1's backup into empty space (attempt `n` of several); `tree` is where the corpus lands. */
  restoreOldest(n: number): { run: TimedRun; tree: string };
}

const pass = 'bench-password-not-secret';

/** Our CLI with one home and one share for every round (as the throughput bench runs it), pruning nothing. */
function ours(b: RetentionBench): Store {
  const home = join(b.work, 'home-azsbackup');
  const share = join(b.work, 'share');
  mkdirSync(share);
  const key = execFileSync('node', [b.cli, 'New-EncryptionKey', '--output', 'json'], {
    env: { ...process.env, AZSBACKUP_HOME: home },
    encoding: 'utf8',
  });
  const env = { AZSBACKUP_ENCRYPTIONKEY: JSON.parse(key).Key as string };
  // Start-InfrastructureBackup does not prune (only the scheduler and Invoke-BackupPrune do); the
  // longest retention says so to anyone who adds a prune.
  const setup = [
    b.azs(home, 'Set-BackupShare', `-Path '${share}' -BackupRetentionPeriodInDays 14 -SkipValidation`),
    b.azs(home, 'Register-InfrastructureRole', `-Name Corpus -Provider directory -Path ${b.corpus}`),
  ];
  execFileSync('bash', ['-c', setup.map((c) => `${c} >/dev/null`).join(' && ')], { env: { ...process.env, ...env } });
  const names: string[] = [];
  return {
    name: 'azsbackup',
    backup(round) {
      const out = join(b.work, `azsbackup-backup-${round}.json`);
      const run = b.timed('azsbackup backup', `${b.azs(home, 'Start-InfrastructureBackup', '')} > ${out}`, env, [b.corpus]);
      names.push(JSON.parse(readFileSync(out, 'utf8')).Name as string);
      return run;
    },
    bytes: () => treeSize(share),
    // Into the registered path, from a fresh home as after losing the machine: the caller has moved the corpus away.
    restoreOldest(n) {
      const restore = b.azs(join(b.work, `home-fresh-${n}`), 'Restore-AzsBackup', `-Name ${names[0]} -Path '${share}' -EncryptionKey -`);
      const run = b.timed('azsbackup restore', `printf '%s\\n' "$AZSBACKUP_ENCRYPTIONKEY" | ${restore} >/dev/null`, env, [share]);
      return { run, tree: b.corpus };
    },
  };
}

function restic(b: RetentionBench): Store {
  const repo = join(b.work, 'restic-repo');
  const env = { RESTIC_PASSWORD: pass, RESTIC_REPOSITORY: repo, RESTIC_CACHE_DIR: join(b.work, 'restic-cache') };
  execFileSync('restic', ['init'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  return {
    name: 'restic',
    backup: (round) => b.timed('restic backup', `restic backup --quiet --tag round-${round} ${b.corpus}`, env, [b.corpus]),
    bytes: () => treeSize(repo),
    restoreOldest(n) {
      const listing = execFileSync('restic', ['snapshots', '--json', '--tag', 'round-1'], {
        env: { ...process.env, ...env },
        encoding: 'utf8',
      });
      const id = (JSON.parse(listing) as { id: string }[])[0]!.id;
      const out = join(b.work, `restore-restic-${n}`);
      const run = b.timed('restic restore', `restic restore ${id} --quiet --target ${out}`, env, [repo]);
      // restic restores the absolute path it backed up below the target.
      return { run, tree: join(out, b.corpus) };
    },
  };
}

function borg(b: RetentionBench): Store {
  const repo = join(b.work, 'borg-repo');
  const env = {
    BORG_PASSPHRASE: pass,
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    // Its files cache and chunk index, kept across rounds as on a real machine.
    BORG_BASE_DIR: join(b.work, 'borg-base'),
  };
  execFileSync('borg', ['init', '--encryption=repokey-blake2', repo], { env: { ...process.env, ...env }, stdio: 'ignore' });
  const folder = basename(b.corpus);
  return {
    name: 'borg',
    backup: (round) =>
      b.timed('borg backup', `cd ${b.work} && borg create --compression zstd,1 ${repo}::round-${round} ${folder}`, env, [b.corpus]),
    bytes: () => treeSize(repo),
    restoreOldest(n) {
      const out = join(b.work, `restore-borg-${n}`);
      mkdirSync(out);
      const run = b.timed('borg restore', `cd ${out} && borg extract ${repo}::round-1`, env, [repo]);
      return { run, tree: join(out, folder) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The rounds, the restores and the report

interface Backup {
  run: TimedRun;
  bytes: number;
}

interface Round {
  round: number;
  /** undefined for round 1, the corpus as made. */
  changed?: Churn;
  backups: Map<string, Backup>;
}

interface Restored {
  /** The median attempt by seconds; its peak RSS is the highest of all attempts. */
  run: TimedRun;
  seconds: number[];
  /** What differed from round 1's corpus, in any attempt. */
  differences: string[];
}

/** restic and borg are Debian packages: installed (as root, apt-get) when missing, with GNU time for peak RSS. */
function ensureTools(b: RetentionBench): void {
  const wanted = [
    '/usr/bin/time:time',
    ...(b.tools.includes('restic') ? ['restic:restic'] : []),
    ...(b.tools.includes('borg') ? ['borg:borgbackup'] : []),
  ];
  execFileSync('bash', [join(b.root, 'scripts', 'ensure-packages.sh'), ...wanted], { stdio: ['ignore', 'inherit', 'inherit'] });
}

/**
 * Fails early rather than on a full disk: while our backups are full copies each round adds up to
 * the corpus (less its compression), and there are the two repositories, every tool's restores and the corpus.
 */
function checkSpace(b: RetentionBench): void {
  const fs = statfsSync(b.work);
  const free = fs.bavail * fs.bsize;
  const need = b.size * (b.rounds + 3 + b.tools.length * b.restores);
  if (free < need)
    throw new Error(
      `--retention ${b.rounds} at --size ${mib(b.size)} MiB may need ${mib(need)} MiB in ${b.work}, which has ${mib(free)} MiB free: set BENCH_DIR or lower --size.`,
    );
}

/** One round: every store backs up the corpus as it is now, in an order that rotates with the round. */
function backupRound(stores: Store[], round: number, changed: Churn | undefined): Round {
  const order = [...stores.slice(round % stores.length), ...stores.slice(0, round % stores.length)];
  const measured = new Map<string, Backup>();
  for (const store of order) {
    const run = store.backup(round);
    measured.set(store.name, { run, bytes: store.bytes() });
  }
  const backups = new Map(stores.map((s) => [s.name, measured.get(s.name)!]));
  const line = stores.map((s) => {
    const { run, bytes } = backups.get(s.name)!;
    return `${s.name} ${run.seconds.toFixed(2)} s, ${mib(bytes)} MiB${s.name === 'azsbackup' ? ` (peak RSS ${run.peakRssMB.toFixed(0)} MiB)` : ''}`;
  });
  const what = changed ? `${mib(changed.bytes)} MiB changed, ${changed.deleted} files deleted` : 'the corpus as made';
  process.stdout.write(`round ${round} (${what}): ${line.join('; ')}\n`);
  return { round, changed, backups };
}

/**
 * Every store restores round 1's backup `b.restores` times, the order rotating from one attempt to
 * the next (which tool runs first meets the page cache and the VM's memory as the one before left
 * them); each tree is compared with round 1's corpus.
 */
function restoreOldest(b: RetentionBench, stores: Store[], original: Map<string, string>): Map<string, Restored> {
  // Ours restores into the registered path, so the corpus moves away, and so does each restored
  // tree before the next attempt (moved, not deleted: see bench.ts on ext4 and discard).
  renameSync(b.corpus, join(b.work, 'corpus-last-round'));
  const attempts = new Map<string, { run: TimedRun; differences: string[] }[]>(stores.map((s) => [s.name, []]));
  for (let n = 1; n <= b.restores; n++) {
    const shift = (n - 1) % stores.length;
    for (const store of [...stores.slice(shift), ...stores.slice(0, shift)]) {
      const { run, tree } = store.restoreOldest(n);
      const diff = differences(original, tree);
      attempts.get(store.name)!.push({ run, differences: diff });
      if (tree === b.corpus) renameSync(tree, join(b.work, `${store.name}-restored-${n}`));
      const verdict =
        diff.length === 0 ? 'identical to round 1' : `${diff.length} differences from round 1, e.g. ${diff.slice(0, 3).join(', ')}`;
      process.stdout.write(`restore ${n} of round 1: ${store.name} ${run.seconds.toFixed(2)} s, ${verdict}\n`);
    }
  }
  return new Map(
    stores.map((s) => {
      const runs = attempts.get(s.name)!;
      const bySeconds = [...runs].sort((x, y) => x.run.seconds - y.run.seconds);
      const middle = bySeconds[Math.floor((bySeconds.length - 1) / 2)]!.run;
      const restored: Restored = {
        run: { ...middle, peakRssMB: Math.max(...runs.map((r) => r.run.peakRssMB)) },
        seconds: runs.map((r) => r.run.seconds),
        differences: [...new Set(runs.flatMap((r) => r.differences))],
      };
      return [s.name, restored];
    }),
  );
}

/** The middle value, or the mean of the two middle ones (six incremental rounds have no single middle). */
function median(xs: number[]): number {
  const sorted = [...xs].sort((a, c) => a - c);
  const half = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1 ? sorted[half]! : (sorted[half - 1]! + sorted[half]!) / 2;
}
const ratio = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}x` : '-');
const num = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');

/** The per-round table: seconds, store bytes, and ours against each reference. */
function roundTable(names: string[], rounds: Round[]): string[] {
  const refs = names.slice(1);
  const head = [
    'round',
    'changed MiB',
    ...names.map((n) => `${n} s`),
    ...names.map((n) => `${n} MiB`),
    ...refs.map((r) => `size ours/${r}`),
    ...refs.map((r) => `speed ${r} s/ours s`),
    'our peak RSS MiB',
  ];
  const rows = rounds.map((r) => {
    const get = (n: string) => r.backups.get(n)!;
    const us = get(names[0]!);
    return [
      String(r.round),
      r.changed ? mib(r.changed.bytes) : '(corpus)',
      ...names.map((n) => get(n).run.seconds.toFixed(2)),
      ...names.map((n) => mib(get(n).bytes)),
      ...refs.map((n) => ratio(us.bytes / get(n).bytes)),
      ...refs.map((n) => ratio(get(n).run.seconds / us.run.seconds)),
      us.run.peakRssMB.toFixed(0),
    ];
  });
  return [head, head.map((_, i) => (i === 0 ? '---' : '---:')), ...rows].map((cells) => `| ${cells.join(' | ')} |`);
}

/** Per tool: first and incremental backups, what the store holds and adds, and the restore of round 1. */
function toolTable(names: string[], rounds: Round[], restored: Map<string, Restored>): string[] {
  const head = [
    'tool',
    'first backup s',
    'incremental backup s (median)',
    'store after round 1 MiB',
    'added per incremental round MiB (median)',
    `store after round ${rounds.length} MiB`,
    'restore of round 1 s (median)',
    'restores s',
    'restore peak RSS MiB',
    'restored = round 1',
  ];
  const rows = names.map((n) => {
    const backups = rounds.map((r) => r.backups.get(n)!);
    const added = backups.slice(1).map((x, i) => x.bytes - backups[i]!.bytes);
    const { run, seconds, differences: diff } = restored.get(n)!;
    return [
      n,
      backups[0]!.run.seconds.toFixed(2),
      num(median(backups.slice(1).map((x) => x.run.seconds)), 2),
      mib(backups[0]!.bytes),
      num(median(added) / MiB),
      mib(backups[backups.length - 1]!.bytes),
      run.seconds.toFixed(2),
      seconds.map((x) => x.toFixed(2)).join(', '),
      run.peakRssMB.toFixed(0),
      diff.length === 0 ? 'yes' : `no (${diff.length} files differ)`,
    ];
  });
  return [head, head.map((_, i) => (i === 0 ? '---' : '---:')), ...rows].map((cells) => `| ${cells.join(' | ')} |`);
}

/** Ours against each reference: size after the last round, backup speed first and incremental, restore speed. */
function ratioTable(names: string[], rounds: Round[], restored: Map<string, Restored>): string[] {
  const us = names[0]!;
  const last = rounds[rounds.length - 1]!;
  const speed = (r: Round, n: string) => r.backups.get(n)!.run.seconds / r.backups.get(us)!.run.seconds;
  const rows = names
    .slice(1)
    .map((n) => [
      n,
      ratio(last.backups.get(us)!.bytes / last.backups.get(n)!.bytes),
      ratio(speed(rounds[0]!, n)),
      ratio(median(rounds.slice(1).map((r) => speed(r, n)))),
      ratio(restored.get(n)!.run.seconds / restored.get(us)!.run.seconds),
    ]);
  return [
    `| ${us} vs | store size after round ${rounds.length} (ours/theirs) | first backup speed (their s/our s) | incremental backup speed (median of rounds) | restore of round 1 speed (medians) |`,
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows.map((cells) => `| ${cells.join(' | ')} |`),
  ];
}

/**
 * The retention mode: makes the corpus, backs it up `b.rounds` times with every store, changing it
 * between rounds, restores round 1 with each, and returns the report (Markdown) and whether our
 * restore is round 1's corpus byte for byte.
 */
export function retentionBench(b: RetentionBench): { text: string; identical: boolean } {
  ensureTools(b);
  checkSpace(b);
  makeCorpus(b.corpus, b.size);
  const corpusBytes = treeSize(b.corpus);
  const original = manifest(b.corpus);
  process.stdout.write(`Retention: ${mib(corpusBytes)} MiB corpus in ${b.corpus}, ${b.rounds} rounds, ~3% changed between rounds\n`);
  const stores = [ours(b), ...(b.tools.includes('restic') ? [restic(b)] : []), ...(b.tools.includes('borg') ? [borg(b)] : [])];
  const rounds: Round[] = [];
  for (let round = 1; round <= b.rounds; round++) {
    const changed = round === 1 ? undefined : churn(b.corpus, round, corpusBytes);
    rounds.push(backupRound(stores, round, changed));
  }
  const restored = restoreOldest(b, stores, original);
  const names = stores.map((s) => s.name);
  const text = [
    `### Retention: ${mib(corpusBytes)} MiB corpus, ${b.rounds} rounds, ~3% changed between rounds, ${new Date().toISOString()}`,
    '',
    ...roundTable(names, rounds),
    '',
    ...toolTable(names, rounds, restored),
    '',
    ...(names.length > 1 ? [...ratioTable(names, rounds, restored), ''] : []),
  ].join('\n');
  return { text, identical: restored.get('azsbackup')!.differences.length === 0 };
}
