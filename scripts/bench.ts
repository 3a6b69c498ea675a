// npm run bench [-- --size 500M] [--rounds N] [--smb] [--blob] [--tools azsbackup,restic,borg,pipeline,tar] [--role-per-folder] [--keep]
// npm run bench -- --retention [N] [--size 500M] [--tools azsbackup,restic,borg] [--restores R] [--keep]
// node dist/tools/bench.js --make-corpus DIR [--size 500M]; --churn DIR --round N [--size 500M]: the
// retention bench's corpus, and its changes of round N, alone (scripts/backup-pairs.sh uses them)
//
// Backup and restore throughput and peak memory of AzsBackup against references measured in the
// same run on the same deterministic corpus: restic, borg, and a `tar | zstd -1 -T0 | openssl enc`
// pipeline (with --smb also an SMB share on a loopback Samba, against `smbclient put` of the
// pipeline's output; with --blob also a container on a loopback Azurite, against our own backup to
// a local folder and the pipeline's output uploaded with the Azure SDK's own uploadStream and read
// back with its download). Plain `tar -c` / `tar -x` with neither compression nor encryption is the
// floor: no tool that writes the same files one at a time restores faster than it.
// Machines here are shared and noisy: read the ratios, not the absolute figures.
// --role-per-folder registers each top folder of the corpus (json, blobs, small) as a role of its
// own, so that our restore takes the path of a backup with several roles (all staged, then swapped).
// --retention N (7 by default) measures instead N rounds of backups into one store per tool of a
// corpus changing ~3% between rounds, and the restore of the oldest (--restores R times each, 3 by
// default, the median reported): see scripts/bench-retention.ts.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { tuneAllocator } from '../src/native/allocator.js';
import { NODE_FLAGS } from '../src/process/node-flags.js';
import { startSamba } from '../test/support/samba.js';
import { makeCorpus, treeSize, warmUp } from './bench-corpus.js';
import { churn, retentionBench } from './bench-retention.js';
import { startAzurite } from '../test/support/azurite.js';

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
// Built to dist/tools/bench.js: the repository is two folders up.
const root = resolve(new URL('../..', import.meta.url).pathname);
const cli = join(root, 'bin', 'azsbackup.js');

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)B?$/i.exec(text.trim());
  if (!m) throw new Error(`--size takes a size like 500M or 5G, not ${text}`);
  return Math.round(Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G']);
}

/** --tools azsbackup,restic,borg,pipeline: run only these (e.g. only ours for a 5 GiB memory check). */
const tools = (arg('--tools') ?? 'azsbackup,restic,borg,pipeline,tar').split(',');
const size = parseSize(arg('--size') ?? process.env.BENCH_SIZE ?? '500M');
const rolePerFolder = args.includes('--role-per-folder');
const ourRoles = rolePerFolder ? ', ours as one role per top folder' : '';
/**
 * --rounds N: each tool runs N times, interleaved; the median is reported. The default is one round
 * per tool (at least 3), so that every tool takes every place in the order once: on the build VM
 * a step ran markedly slower late in a round than first in one. Above 1 GiB, 1 round.
 */
const roundsFor = (tools: number) => Number(arg('--rounds') ?? (size > 1024 ** 3 ? 1 : Math.max(3, tools)));
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'azsbackup-bench-'));
const corpus = join(work, 'corpus');

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

interface Run {
  seconds: number;
  peakRssMB: number;
  cpuSeconds: number;
}

/**
 * Runs a command under GNU time; peak RSS is the largest of the process tree's members. What it
 * reads (`reads`: the corpus for a backup, the tool's store for a restore) is read once first, so
 * every tool starts with it in the page cache (bench-corpus.ts warmUp: borg drops it).
 */
function timed(label: string, command: string, env: Record<string, string> = {}, reads: string[] = []): Run {
  for (const path of reads) warmUp(path);
  execFileSync('sync');
  const out = join(work, 'time.txt');
  const started = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', '-o', out, 'bash', '-c', command], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) throw new Error(`${label} failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  const [rssKB, user, sys] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { seconds, peakRssMB: rssKB! / 1024, cpuSeconds: user! + sys! };
}

interface Row {
  tool: string;
  backup: Run;
  restore: Run;
  outputBytes: number;
}

/** One tool: a backup and a restore into fresh places, the round number keeping them apart. */
interface Tool {
  name: string;
  run(round: number): Row;
}

function azs(home: string, cmdlet: string, rest: string): string {
  // With the installed command's node flags (its first line; `node cli` would leave them out).
  return `AZSBACKUP_HOME=${home} node ${NODE_FLAGS.join(' ')} ${cli} ${cmdlet} ${rest} --output json`;
}

/** Our backup and restore; `share(round)` gives a fresh share (an SMB folder, a local folder). */
function ours(
  label: string,
  share: (round: number) => { path: string; size: () => number },
  credentialEnv: Record<string, string>,
  userArgs: string,
): Tool {
  return {
    name: label,
    run(round) {
      const { path: sharePath, size: sizeOf } = share(round);
      const home = join(work, `home-${label}-${round}`);
      const key = execFileSync('node', [cli, 'New-EncryptionKey', '--output', 'json'], {
        env: { ...process.env, AZSBACKUP_HOME: home },
        encoding: 'utf8',
      });
      const env = { ...credentialEnv, AZSBACKUP_ENCRYPTIONKEY: JSON.parse(key).Key as string };
      const roles = rolePerFolder
        ? readdirSync(corpus)
            .sort()
            .map((folder, i) => `-Name ${folder} -Provider directory -Path ${join(corpus, folder)} -RestoreOrder ${i + 1}`)
        : [`-Name Corpus -Provider directory -Path ${corpus}`];
      const register = roles.map((r) => `${azs(home, 'Register-InfrastructureRole', r)} >/dev/null`).join(' && ');
      execFileSync(
        'bash',
        ['-c', `${azs(home, 'Set-BackupShare', `-Path '${sharePath}' ${userArgs} -SkipValidation`)} >/dev/null && ${register}`],
        { env: { ...process.env, ...env } },
      );
      const backup = timed(`${label} backup`, `${azs(home, 'Start-InfrastructureBackup', '')} > ${work}/backup-${label}.json`, env, [
        corpus,
      ]);
      const name = JSON.parse(readFileSync(`${work}/backup-${label}.json`, 'utf8')).Name as string;
      const outputBytes = sizeOf();
      // Every tool restores into empty space: the references into new folders, ours into the
      // registered path after the corpus is moved away (and compared with its digest afterwards).
      // Moved, not deleted: on ext4 mounted with `discard` (as here), creating files right after
      // deleting thousands costs ~20x more per file for a while, which would tax only our restore.
      renameSync(corpus, join(work, `spent-corpus-${label}-${round}`));
      const restore = timed(
        `${label} restore`,
        `printf '%s\\n' "$AZSBACKUP_ENCRYPTIONKEY" | ${azs(join(work, `fresh-${label}-${round}`), 'Restore-AzsBackup', `-Name ${name} -Path '${sharePath}' ${userArgs} -EncryptionKey -`)} >/dev/null`,
        env,
        sharePath.startsWith('/') ? [sharePath] : [],
      );
      if (treeDigest(corpus) !== digest) throw new Error(`${label}: the restore did not reproduce the corpus.`);
      return { tool: label, backup, restore, outputBytes };
    },
  };
}

const pass = 'bench-password-not-secret';

function restic(): Tool {
  return {
    name: 'restic',
    run(round) {
      const repo = join(work, `spent-restic-${round}`);
      execFileSync('restic', ['init', '--repo', repo], { env: { ...process.env, RESTIC_PASSWORD: pass }, stdio: 'ignore' });
      const backup = timed('restic backup', `restic --repo ${repo} backup --quiet ${corpus}`, { RESTIC_PASSWORD: pass }, [corpus]);
      const restore = timed(
        'restic restore',
        `restic --repo ${repo} restore latest --quiet --target ${work}/spent-restic-out-${round}`,
        { RESTIC_PASSWORD: pass },
        [repo],
      );
      return { tool: 'restic', backup, restore, outputBytes: treeSize(repo) };
    },
  };
}

function borg(): Tool {
  return {
    name: 'borg',
    run(round) {
      const repo = join(work, `spent-borg-${round}`);
      const env = {
        BORG_PASSPHRASE: pass,
        BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
        BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
        BORG_BASE_DIR: join(work, `spent-borg-base-${round}`),
      };
      execFileSync('borg', ['init', '--encryption=repokey-blake2', repo], { env: { ...process.env, ...env }, stdio: 'ignore' });
      const backup = timed('borg backup', `cd ${work} && borg create --compression zstd,1 ${repo}::bench corpus`, env, [corpus]);
      const out = join(work, `spent-borg-out-${round}`);
      mkdirSync(out);
      const restore = timed('borg restore', `cd ${out} && borg extract ${repo}::bench`, env, [repo]);
      return { tool: 'borg', backup, restore, outputBytes: treeSize(repo) };
    },
  };
}

const ENC = 'openssl enc -aes-256-ctr -pbkdf2 -pass env:PIPE_PASS';

function pipelineTool(): Tool {
  return {
    name: 'tar+zstd+openssl',
    run(round) {
      const file = join(work, `spent-pipeline-${round}.tar.zst.enc`);
      const backup = timed('pipeline backup', `tar -C ${corpus} -cf - . | zstd -1 -T0 -q | ${ENC} > ${file}`, { PIPE_PASS: pass }, [
        corpus,
      ]);
      const out = join(work, `spent-pipe-out-${round}`);
      mkdirSync(out);
      const restore = timed('pipeline restore', `${ENC} -d < ${file} | zstd -d -q | tar -C ${out} -xf -`, { PIPE_PASS: pass }, [file]);
      return { tool: 'tar+zstd+openssl', backup, restore, outputBytes: statSync(file).size };
    },
  };
}

/**
 * GNU tar alone, uncompressed and unencrypted: archiving is reading the files and writing one, and
 * extracting (from the page cache) is creating and writing the files. On the 2-core VMs here the
 * latter is mostly kernel time that varies from minute to minute, and it bounds every restore.
 */
function plainTarTool(): Tool {
  return {
    name: 'tar alone',
    run(round) {
      const file = join(work, `spent-plain-${round}.tar`);
      const backup = timed('plain tar backup', `tar -C ${corpus} -cf ${file} .`, {}, [corpus]);
      const out = join(work, `spent-plain-out-${round}`);
      mkdirSync(out);
      const restore = timed('plain tar restore', `tar -C ${out} -xf ${file}`, {}, [file]);
      return { tool: 'tar alone', backup, restore, outputBytes: statSync(file).size };
    },
  };
}

/** The same pipeline with `smbclient put` / `get` to the share, the reference for our SMB run. */
function smbPipelineTool(smbclient: string, root: string): Tool {
  return {
    name: 'tar+zstd+openssl+smbclient',
    run(round) {
      const name = `pipeline-${round}.enc`;
      const env = { PIPE_PASS: pass };
      const backup = timed(
        'pipeline smb backup',
        `tar -C ${corpus} -cf - . | zstd -1 -T0 -q | ${ENC} | ${smbclient} -c 'put /dev/stdin ${name}' >/dev/null 2>&1`,
        env,
        [corpus],
      );
      const out = join(work, `spent-pipe-smb-out-${round}`);
      mkdirSync(out);
      const restore = timed(
        'pipeline smb restore',
        `${smbclient} -c 'get ${name} /dev/stdout' 2>/dev/null | ${ENC} -d | zstd -d -q | tar -C ${out} -xf -`,
        env,
      );
      return { tool: 'tar+zstd+openssl+smbclient', backup, restore, outputBytes: statSync(join(root, name)).size };
    },
  };
}

/**
 * Runs every tool `rounds` times, interleaved and in a rotating order, and keeps each tool's median
 * round: the same `tar -x` took 0.2 s and 2.0 s minutes apart on the build VM, and that noise
 * should land on every tool alike. Two causes showed in `perf`: after large deletions, ext4 spends
 * its inode allocation in `recently_deleted`; and memory the guest has not touched for some
 * seconds is slow to write (the VM hands freed pages back to its host, so the copy into a fresh
 * page-cache page faults). Each round's outputs are deleted before the next, after a sync and a pause.
 */
interface Measured {
  /** Each tool's median round. */
  rows: Row[];
  /** Every round of each tool, in round order. */
  rounds: Map<string, Row[]>;
}

function measure(list: Tool[]): Measured {
  const rounds = roundsFor(list.length);
  const runs = new Map<string, Row[]>(list.map((t) => [t.name, []]));
  for (let round = 0; round < rounds; round++) {
    const order = [...list.slice(round % list.length), ...list.slice(0, round % list.length)];
    for (const tool of order) {
      const row = tool.run(round);
      runs.get(tool.name)!.push(row);
      process.stdout.write(
        `round ${round + 1}: ${tool.name.padEnd(28)} backup ${row.backup.seconds.toFixed(2)} s, restore ${row.restore.seconds.toFixed(2)} s\n`,
      );
    }
    for (const spent of readdirSync(work).filter((n) => n.startsWith('spent-')))
      rmSync(join(work, spent), { recursive: true, force: true });
    execFileSync('sync');
    spawnSync('sleep', ['5']);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const middle = (rs: Run[]): Run => ({
    seconds: median(rs.map((r) => r.seconds)),
    cpuSeconds: median(rs.map((r) => r.cpuSeconds)),
    peakRssMB: Math.max(...rs.map((r) => r.peakRssMB)),
  });
  const rows = list.map((t) => {
    const rs = runs.get(t.name)!;
    return {
      tool: t.name,
      backup: middle(rs.map((r) => r.backup)),
      restore: middle(rs.map((r) => r.restore)),
      outputBytes: rs[0]!.outputBytes,
    };
  });
  return { rows, rounds: runs };
}

/**
 * Our speed over a reference's in each round, lowest to highest: the two ran minutes apart at
 * most, so the VM's slow spells weigh on both alike and the spread says how far one median can be
 * trusted.
 */
function roundRatios(ours: Row[], reference: Row[], step: 'backup' | 'restore'): string {
  const ratios = ours.map((r, i) => reference[i]![step].seconds / r[step].seconds).sort((a, b) => a - b);
  return ratios.length > 1 ? `${ratios[0]!.toFixed(2)}x-${ratios[ratios.length - 1]!.toFixed(2)}x` : `${ratios[0]!.toFixed(2)}x`;
}

let digest = '';

function main(): { bytes: number } {
  process.stdout.write(`Corpus: ${(size / 1048576).toFixed(0)} MiB in ${corpus}; the median round of each tool is kept\n`);
  // Our command tunes its allocator when the addon is built; a run without it restores ~15% slower.
  const tuning = tuneAllocator();
  if (tuning !== 'tuned')
    process.stdout.write(
      `Note: azsbackup runs without its addons in src/native here (${tuning}: see npm run build:native and AZSBACKUP_NATIVE).\n`,
    );
  makeCorpus(corpus, size);
  const bytes = treeSize(corpus);
  digest = treeDigest(corpus);
  const list: Tool[] = [
    ours(
      'azsbackup',
      (round) => {
        const share = join(work, `spent-share-${round}`);
        mkdirSync(share);
        return { path: share, size: () => treeSize(share) };
      },
      {},
      '',
    ),
  ];
  if (tools.includes('restic')) list.push(restic());
  if (tools.includes('borg')) list.push(borg());
  if (tools.includes('pipeline')) list.push(pipelineTool());
  if (tools.includes('tar')) list.push(plainTarTool());
  report(`local folder${ourRoles}`, bytes, measure(list), ['restic', 'borg', 'tar+zstd+openssl', 'tar alone']);
  return { bytes };
}

/** The same backup to an SMB share on a loopback Samba, against `smbclient put` of the pipeline's output. */
async function smb(bytes: number): Promise<void> {
  const samba = await startSamba();
  try {
    const auth = join(work, 'smb-auth');
    writeFileSync(auth, `username = ${samba.userName}\npassword = ${samba.password}\n`, { mode: 0o600 });
    const smbclient = `smbclient //127.0.0.1/${samba.share} -p ${samba.port} -A ${auth} -m SMB3 -E`;
    const list = [
      ours(
        'azsbackup-smb',
        (round) => ({ path: `${samba.smbUrl}/spent-${round}`, size: () => treeSize(join(samba.root, `spent-${round}`)) }),
        { AZSBACKUP_PASSWORD: samba.password },
        `-UserName ${samba.userName}`,
      ),
      smbPipelineTool(smbclient, samba.root),
    ];
    // Made through the share, so they belong to the share's account.
    for (let round = 0; round < roundsFor(list.length); round++)
      execFileSync('bash', ['-c', `${smbclient} -c 'mkdir spent-${round}' >/dev/null`]);
    report(`SMB share (Samba on loopback)${ourRoles}`, bytes, measure(list), ['tar+zstd+openssl+smbclient']);
  } finally {
    await samba.stop();
  }
}

/**
 * The pipeline's output uploaded to a container with the SDK's BlockBlobClient.uploadStream (the
 * same 8 MiB blocks, three in flight, as our target) and streamed back with its download.
 */
function blobPipelineTool(accountUrl: string, accountKey: string): Tool {
  const sdk = (
    body: string,
  ) => `node --input-type=module -e "import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
const c = new BlobServiceClient('${accountUrl}', new StorageSharedKeyCredential('${accountUrl.split('/').pop()}', process.env.BLOB_KEY)).getContainerClient(process.argv[1]).getBlockBlobClient('pipeline.enc');
${body}" `;
  const upload = sdk('await c.uploadStream(process.stdin, 8 * 1024 * 1024, 3);');
  const download = sdk('(await c.download()).readableStreamBody.pipe(process.stdout);');
  return {
    name: 'tar+zstd+openssl+uploadStream',
    run(round) {
      const env = { PIPE_PASS: pass, BLOB_KEY: accountKey };
      const backup = timed(
        'pipeline blob backup',
        `tar -C ${corpus} -cf - . | zstd -1 -T0 -q | ${ENC} | (cd ${root} && ${upload} pipe-${round})`,
        env,
        [corpus],
      );
      const out = join(work, `spent-pipe-blob-out-${round}`);
      mkdirSync(out);
      const restore = timed(
        'pipeline blob restore',
        `(cd ${root} && ${download} pipe-${round}) | ${ENC} -d | zstd -d -q | tar -C ${out} -xf -`,
        env,
      );
      const size = execFileSync(
        'bash',
        ['-c', `cd ${root} && ${sdk('process.stdout.write(String((await c.getProperties()).contentLength));')} pipe-${round}`],
        { env: { ...process.env, ...env }, encoding: 'utf8' },
      );
      return { tool: 'tar+zstd+openssl+uploadStream', backup, restore, outputBytes: Number(size) };
    },
  };
}

/** Our backup to a blob container on a loopback Azurite, against ours to a local folder and the SDK's uploadStream of the pipeline. */
async function blob(): Promise<void> {
  const azurite = await startAzurite();
  try {
    const stored = join(azurite.location, '__blobstorage__');
    const list = [
      ours(
        'azsbackup-blob',
        (round) => {
          // What the backup adds to Azurite's extents is what it stored.
          const before = existsSync(stored) ? treeSize(stored) : 0;
          return { path: azurite.url(`spent-${round}`), size: () => treeSize(stored) - before };
        },
        { AZSBACKUP_STORAGEACCOUNTKEY: azurite.accountKey },
        '',
      ),
      ours(
        'azsbackup-local',
        (round) => {
          const share = join(work, `spent-share-local-${round}`);
          mkdirSync(share);
          return { path: share, size: () => treeSize(share) };
        },
        {},
        '',
      ),
      blobPipelineTool(azurite.accountUrl, azurite.accountKey),
    ];
    for (let round = 0; round < roundsFor(list.length); round++) {
      await azurite.createContainer(`spent-${round}`);
      await azurite.createContainer(`pipe-${round}`);
    }
    report(`blob container (Azurite on loopback)${ourRoles}`, treeSize(corpus), measure(list), [
      'azsbackup-local',
      'tar+zstd+openssl+uploadStream',
    ]);
  } finally {
    await azurite.stop();
  }
}

function report(where: string, bytes: number, { rows, rounds }: Measured, references: string[]): void {
  const mbps = (r: Run) => bytes / 1048576 / r.seconds;
  const us = rows[0]!;
  const ourRounds = rounds.get(us.tool)!;
  const lines = [
    `### ${where}: ${(bytes / 1048576).toFixed(0)} MiB corpus, ${new Date().toISOString()}`,
    '',
    '| tool | backup MiB/s | restore MiB/s | backup CPU s | restore CPU s | output MiB | backup peak RSS MiB | restore peak RSS MiB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.tool} | ${mbps(r.backup).toFixed(1)} | ${mbps(r.restore).toFixed(1)} | ${r.backup.cpuSeconds.toFixed(1)} | ${r.restore.cpuSeconds.toFixed(1)} | ${(r.outputBytes / 1048576).toFixed(1)} | ${r.backup.peakRssMB.toFixed(0)} | ${r.restore.peakRssMB.toFixed(0)} |`,
    ),
    '',
    '| azsbackup vs | backup throughput ratio | restore throughput ratio | backup, round by round | restore, round by round |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows
      .filter((r) => references.includes(r.tool))
      .map((r) => {
        const theirs = rounds.get(r.tool)!;
        return `| ${r.tool} | ${(r.backup.seconds / us.backup.seconds).toFixed(2)}x | ${(r.restore.seconds / us.restore.seconds).toFixed(2)}x | ${roundRatios(ourRounds, theirs, 'backup')} | ${roundRatios(ourRounds, theirs, 'restore')} |`;
      }),
    '',
  ];
  publish(lines.join('\n'));
}

/** Prints a report and appends it to .bench/results.md. */
function publish(text: string): void {
  process.stdout.write(`\n${text}\n`);
  mkdirSync(join(root, '.bench'), { recursive: true });
  writeFileSync(join(root, '.bench', 'results.md'), `${text}\n`, { flag: 'a' });
}

/** --retention [N]: N rounds (7 by default) of one corpus changing between rounds, against restic and borg. */
function retention(): void {
  const value = arg('--retention');
  const rounds = value !== undefined && /^\d+$/.test(value) ? Number(value) : 7;
  if (rounds < 1) throw new Error('--retention takes a number of rounds, at least 1.');
  const restores = Number(arg('--restores') ?? 3);
  if (!Number.isInteger(restores) || restores < 1) throw new Error('--restores takes a number of restores per tool, at least 1.');
  const { text, identical } = retentionBench({ root, work, corpus, cli, size, rounds, restores, tools, timed, azs });
  publish(text);
  if (!identical) throw new Error("azsbackup: the restore of round 1's backup is not round 1's corpus (see the differences above).");
}

/**
 * NODE_EXTRA_CA_CERTS makes node 20 build its whole certificate store as it starts, before any of
 * our code runs: ~50 ms per command where it names the system's CA bundle (144 certificates, as on
 * the build VMs), ~15 ms for a single CA. No tool here talks TLS (Azurite is plain HTTP on
 * loopback), so it is left out for every tool, and the bench says so. An operator who sets it
 * pays that at each command; the figures here do not include it.
 */
function leaveOutCertificateStore(): void {
  const bundle = process.env.NODE_EXTRA_CA_CERTS;
  if (bundle === undefined) return;
  delete process.env.NODE_EXTRA_CA_CERTS;
  process.stdout.write(`Note: NODE_EXTRA_CA_CERTS (${bundle}) is left out for every tool: node would load it at each start.\n`);
}

try {
  leaveOutCertificateStore();
  if (arg('--make-corpus')) makeCorpus(arg('--make-corpus')!, size);
  else if (arg('--churn')) console.log(JSON.stringify(churn(arg('--churn')!, Number(arg('--round') ?? 2), size)));
  else if (args.includes('--retention')) retention();
  else {
    const { bytes } = main();
    if (args.includes('--smb')) await smb(bytes);
    if (args.includes('--blob')) await blob();
  }
} finally {
  if (!args.includes('--keep')) rmSync(work, { recursive: true, force: true });
}
