// npm run bench [-- --size 500M] [--smb] [--keep]
//
// Backup and restore throughput and peak memory of AzsBackup against references measured in the
// same run on the same deterministic corpus: restic, borg, and a `tar | zstd -1 -T0 | openssl enc`
// pipeline (with --smb also an SMB share on a loopback Samba, against `smbclient put` of the
// pipeline's output). Machines here are shared and noisy: read the ratios, not the absolute figures.
import { execFileSync, spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, lstatSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startSamba } from '../test/support/samba.js';

const args = process.argv.slice(2);
const arg = (name: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
// Built to dist/tools/bench.js: the repository is two folders up.
const root = resolve(new URL('../..', import.meta.url).pathname);
const cli = join(root, 'bin', 'azsbackup.js');

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)B?$/i.exec(text.trim());
  if (!m) throw new Error(`--size takes a size like 500M or 5G, not ${text}`);
  return Math.round(Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G']);
}

/** --tools azsbackup,restic,borg,pipeline: run only these (e.g. only ours for a 5 GiB memory check). */
const tools = (arg('--tools') ?? 'azsbackup,restic,borg,pipeline').split(',');
const size = parseSize(arg('--size') ?? process.env.BENCH_SIZE ?? '500M');
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'azsbackup-bench-'));
const corpus = join(work, 'corpus');

/** A deterministic byte stream: AES-256-CTR of zeros under a fixed key. */
function prng(seed: string) {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  return (n: number) => cipher.update(Buffer.alloc(n));
}

/** ~60% JSON records (compressible), ~38% random blobs (incompressible), ~2% small files. */
function makeCorpus(total: number): void {
  const rand = prng('azsbackup bench corpus v1');
  const words = ['compute', 'storage', 'network', 'identity', 'keyvault', 'subscription', 'offer', 'plan', 'quota', 'region'];
  mkdirSync(join(corpus, 'json'), { recursive: true });
  mkdirSync(join(corpus, 'blobs'), { recursive: true });
  mkdirSync(join(corpus, 'small'), { recursive: true });
  let jsonBytes = 0;
  for (let f = 0; jsonBytes < total * 0.6; f++) {
    const records: string[] = [];
    let bytes = 0;
    while (bytes < 8 * 1024 * 1024) {
      const r = rand(16);
      const rec = JSON.stringify({
        id: r.toString('hex'), type: words[r[0]! % 10], name: `${words[r[1]! % 10]}-${r.readUInt16BE(2)}`,
        tags: { env: r[4]! % 2 ? 'prod' : 'dev', owner: `team${r[5]! % 16}` }, quota: r.readUInt32BE(6) % 100000, enabled: r[10]! % 3 !== 0,
        created: new Date(1.7e12 + r.readUInt32BE(11) * 1000).toISOString(),
      });
      records.push(rec);
      bytes += rec.length + 1;
    }
    const text = `${records.join('\n')}\n`;
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
  for (let f = 0; f < small; f++) writeFileSync(join(corpus, 'small', `item-${f}.cfg`), rand(2048).toString('base64'));
}

function treeSize(p: string): number {
  const st = lstatSync(p);
  return st.isDirectory() ? readdirSync(p).reduce((n, e) => n + treeSize(join(p, e)), 0) : st.size;
}

function treeDigest(p: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const f = join(d, e);
      if (statSync(f).isDirectory()) walk(f);
      else h.update(e).update(readFileSync(f));
    }
  };
  walk(p);
  return h.digest('hex');
}

interface Run { seconds: number; peakRssMB: number; cpuSeconds: number }

/** Runs a command under GNU time; peak RSS is the largest of the process tree's members. */
function timed(label: string, command: string, env: Record<string, string> = {}): Run {
  execFileSync('sync');
  const out = join(work, 'time.txt');
  const started = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', '-o', out, 'bash', '-c', command], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8',
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) throw new Error(`${label} failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  const [rssKB, user, sys] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { seconds, peakRssMB: rssKB! / 1024, cpuSeconds: user! + sys! };
}

interface Row { tool: string; backup: Run; restore: Run; outputBytes: number }

function azs(home: string, cmdlet: string, rest: string): string {
  return `AZSBACKUP_HOME=${home} node ${cli} ${cmdlet} ${rest} --output json`;
}

function ours(label: string, sharePath: string, credentialEnv: Record<string, string>, userArgs: string, sizeOf: () => number): Row {
  const home = join(work, `home-${label}`);
  const key = execFileSync('node', [cli, 'New-EncryptionKey', '--output', 'json'], { env: { ...process.env, AZSBACKUP_HOME: home }, encoding: 'utf8' });
  const env = { ...credentialEnv, AZSBACKUP_ENCRYPTIONKEY: JSON.parse(key).Key as string };
  execFileSync('bash', ['-c', `${azs(home, 'Set-BackupShare', `-Path '${sharePath}' ${userArgs} -SkipValidation`)} >/dev/null && ${azs(home, 'Register-InfrastructureRole', `-Name Corpus -Provider directory -Path ${corpus}`)} >/dev/null`], { env: { ...process.env, ...env } });
  const backup = timed(`${label} backup`, `${azs(home, 'Start-InfrastructureBackup', '')} > ${work}/backup-${label}.json`, env);
  const name = JSON.parse(readFileSync(`${work}/backup-${label}.json`, 'utf8')).Name as string;
  const outputBytes = sizeOf();
  // Every tool restores into empty space: the references into new folders, ours into the
  // registered path after the corpus is moved away (and compared with its digest afterwards).
  // Moved, not deleted: on ext4 mounted with `discard` (as here), creating files right after
  // deleting thousands costs ~20x more per file for a while, which would tax only our restore.
  renameSync(corpus, join(work, `corpus-before-${label}`));
  const restore = timed(`${label} restore`, `printf '%s\\n' "$AZSBACKUP_ENCRYPTIONKEY" | ${azs(join(work, `fresh-${label}`), 'Restore-AzsBackup', `-Name ${name} -Path '${sharePath}' ${userArgs} -EncryptionKey -`)} >/dev/null`, env);
  return { tool: label, backup, restore, outputBytes };
}

function main(): { bytes: number; digest: string } {
  process.stdout.write(`Corpus: ${(size / 1048576).toFixed(0)} MiB in ${corpus}\n`);
  makeCorpus(size);
  const bytes = treeSize(corpus);
  const digest = treeDigest(corpus);
  const rows: Row[] = [];
  const pass = 'bench-password-not-secret';

  const share = join(work, 'share');
  mkdirSync(share);
  rows.push(ours('azsbackup', share, {}, '', () => treeSize(share)));

  if (tools.includes('restic')) {
    const restic = join(work, 'restic');
    execFileSync('restic', ['init', '--repo', restic], { env: { ...process.env, RESTIC_PASSWORD: pass }, stdio: 'ignore' });
    const resticBackup = timed('restic backup', `restic --repo ${restic} backup --quiet ${corpus}`, { RESTIC_PASSWORD: pass });
    const resticSize = treeSize(restic);
    rmSync(join(work, 'restic-out'), { recursive: true, force: true });
    const resticRestore = timed('restic restore', `restic --repo ${restic} restore latest --quiet --target ${work}/restic-out`, { RESTIC_PASSWORD: pass });
    rows.push({ tool: 'restic', backup: resticBackup, restore: resticRestore, outputBytes: resticSize });
  }

  if (tools.includes('borg')) {
    const borg = join(work, 'borg');
    const borgEnv = { BORG_PASSPHRASE: pass, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes', BORG_BASE_DIR: join(work, 'borg-base') };
    execFileSync('borg', ['init', '--encryption=repokey-blake2', borg], { env: { ...process.env, ...borgEnv }, stdio: 'ignore' });
    const borgBackup = timed('borg backup', `cd ${work} && borg create --compression zstd,1 ${borg}::bench corpus`, borgEnv);
    const borgSize = treeSize(borg);
    mkdirSync(join(work, 'borg-out'));
    const borgRestore = timed('borg restore', `cd ${work}/borg-out && borg extract ${borg}::bench`, borgEnv);
    rows.push({ tool: 'borg', backup: borgBackup, restore: borgRestore, outputBytes: borgSize });
  }

  if (tools.includes('pipeline')) {
    const enc = `openssl enc -aes-256-ctr -pbkdf2 -pass env:PIPE_PASS`;
    const pipeBackup = timed('pipeline backup', `tar -C ${corpus} -cf - . | zstd -1 -T0 -q | ${enc} > ${work}/pipeline.tar.zst.enc`, { PIPE_PASS: pass });
    mkdirSync(join(work, 'pipe-out'));
    const pipeRestore = timed('pipeline restore', `${enc} -d < ${work}/pipeline.tar.zst.enc | zstd -d -q | tar -C ${work}/pipe-out -xf -`, { PIPE_PASS: pass });
    rows.push({ tool: 'tar+zstd+openssl', backup: pipeBackup, restore: pipeRestore, outputBytes: statSync(`${work}/pipeline.tar.zst.enc`).size });
  }

  if (treeDigest(corpus) !== digest) throw new Error('Our restore did not reproduce the corpus.');
  report('local folder', bytes, rows, ['restic', 'borg', 'tar+zstd+openssl']);
  return { bytes, digest };
}

/** The same backup to an SMB share on a loopback Samba, against `smbclient put` of the pipeline's output. */
async function smb(bytes: number): Promise<void> {
  const samba = await startSamba();
  try {
    const rows = [ours('azsbackup-smb', samba.smbUrl, { AZSBACKUP_PASSWORD: samba.password }, `-UserName ${samba.userName}`, () => treeSize(samba.root))];
    const auth = join(work, 'smb-auth');
    writeFileSync(auth, `username = ${samba.userName}\npassword = ${samba.password}\n`, { mode: 0o600 });
    const smbclient = `smbclient //127.0.0.1/${samba.share} -p ${samba.port} -A ${auth} -m SMB3 -E`;
    const enc = 'openssl enc -aes-256-ctr -pbkdf2 -pass env:PIPE_PASS';
    const env = { PIPE_PASS: 'bench-password-not-secret' };
    const backup = timed('pipeline smb backup', `tar -C ${corpus} -cf - . | zstd -1 -T0 -q | ${enc} | ${smbclient} -c 'put /dev/stdin pipeline.enc' >/dev/null 2>&1`, env);
    const outputBytes = statSync(join(samba.root, 'pipeline.enc')).size;
    mkdirSync(join(work, 'pipe-smb-out'));
    const restore = timed('pipeline smb restore', `${smbclient} -c 'get pipeline.enc /dev/stdout' 2>/dev/null | ${enc} -d | zstd -d -q | tar -C ${work}/pipe-smb-out -xf -`, env);
    rows.push({ tool: 'tar+zstd+openssl+smbclient put', backup, restore, outputBytes });
    report('SMB share (Samba on loopback)', bytes, rows, ['tar+zstd+openssl+smbclient put']);
  } finally {
    await samba.stop();
  }
}

function report(where: string, bytes: number, rows: Row[], references: string[]): void {
  const mbps = (r: Run) => bytes / 1048576 / r.seconds;
  const us = rows[0]!;
  const lines = [
    `### ${where}: ${(bytes / 1048576).toFixed(0)} MiB corpus, ${new Date().toISOString()}`,
    '',
    '| tool | backup MiB/s | restore MiB/s | backup CPU s | restore CPU s | output MiB | backup peak RSS MiB | restore peak RSS MiB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.tool} | ${mbps(r.backup).toFixed(1)} | ${mbps(r.restore).toFixed(1)} | ${r.backup.cpuSeconds.toFixed(1)} | ${r.restore.cpuSeconds.toFixed(1)} | ${(r.outputBytes / 1048576).toFixed(1)} | ${r.backup.peakRssMB.toFixed(0)} | ${r.restore.peakRssMB.toFixed(0)} |`),
    '',
    '| azsbackup vs | backup throughput ratio | restore throughput ratio |',
    '| --- | ---: | ---: |',
    ...rows.filter((r) => references.includes(r.tool)).map((r) => `| ${r.tool} | ${(r.backup.seconds / us.backup.seconds).toFixed(2)}x | ${(r.restore.seconds / us.restore.seconds).toFixed(2)}x |`),
    '',
  ];
  const text = lines.join('\n');
  process.stdout.write(`\n${text}\n`);
  mkdirSync(join(root, '.bench'), { recursive: true });
  writeFileSync(join(root, '.bench', 'results.md'), `${text}\n`, { flag: 'a' });
}

try {
  const { bytes, digest } = main();
  if (args.includes('--smb')) {
    await smb(bytes);
    if (treeDigest(corpus) !== digest) throw new Error('Our SMB restore did not reproduce the corpus.');
  }
} finally {
  if (!args.includes('--keep')) rmSync(work, { recursive: true, force: true });
}
