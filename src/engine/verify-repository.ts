import { createHash } from 'node:crypto';
import { catalogFileName, INFO_FILE, isBackupName, stampTime } from '../catalog/layout.js';
import { listShare } from '../catalog/share-catalog.js';
import type { DecryptWith } from '../crypto/recipient.js';
import { isAzsError } from '../errors.js';
import type { ProgressReporter } from '../progress.js';
import { ChunkIndex } from '../repository/chunk-index.js';
import { decodeIndexFile, readListedIndexFiles, writeIndexFiles } from '../repository/index-file.js';
import { deriveRepositoryKeys, hostKeysFrom, type RepositoryHostKeys, type RepositoryKeys } from '../repository/keys.js';
import { RepositoryLayout } from '../repository/layout.js';
import type { PackEntry } from '../repository/pack-format.js';
import type { ChunkLocation } from '../repository/pack-reader.js';
import { listPackSizes, listPackTimes } from '../repository/rebuild.js';
import { keyFingerprint, readRepositoryConfig, unwrapMaster, type RepositoryConfig } from '../repository/repository-config.js';
import type { Target } from '../targets/target.js';
import { checkPack } from './pack-check.js';
import { FOREIGN_PARTIAL_GRACE_MS } from './prune.js';
import { checkBackupFolder, type RoleCatalog } from './verify.js';

/**
 * Test-BackupRepository: the whole location at once, like `restic check --read-data`. Every pack
 * is read once, however many backups need it:
 *
 * - always: every pack hashes to its name, every index file to its name, every pack a committed
 *   format 3 backup names exists, and every backup's own folder is checked as Test-InfrastructureBackup
 *   checks it (BackupInfo.xml, its catalogs or role files); packs no backup names are reported (orphans:
 *   a backup running now, or garbage for prune), which is not an error;
 * - with the host keys this machine keeps, or the material: every pack's table of contents
 *   authenticates and agrees with the index files, and every index entry names a pack that exists;
 * - with the material (the key or the .pfx): every catalog opened, its chunks in packs its backup
 *   names and in the index, and every chunk read from its pack and authenticated as its id.
 *
 * With -Repair and keys, a lost, damaged or incomplete index is written anew from the packs'
 * tables of contents (one index file), and the index files it replaces are deleted.
 */

export type ProblemSeverity = 'Error' | 'Warning' | 'Information' | 'Repaired';

export interface RepositoryProblem {
  Severity: ProblemSeverity;
  Kind: string;
  /** The file the problem is in, relative to the share. */
  Path: string;
  /** The backups (and, with the material, their roles as backup/role) concerned; empty when none. */
  Backups: string[];
  Message: string;
}

export interface RepositoryTestRecord {
  Path: string;
  RepositoryId: string | null;
  /** Hash (no keys), Structure (the host keys: tables of contents and index), ReadData (the material: every chunk). */
  Mode: 'Hash' | 'Structure' | 'ReadData';
  IsValid: boolean;
  BackupsChecked: number;
  RepositoryBackups: number;
  PacksChecked: number;
  PacksDamaged: number;
  PacksMissing: number;
  OrphanPacks: number;
  IndexFiles: number;
  IndexEntries: number;
  ChunksAuthenticated: number;
  BytesRead: number;
  /** The index file -Repair wrote, or null. */
  IndexRebuilt: string | null;
  Checked: string;
  Problems: RepositoryProblem[];
}

export interface RepositoryCheckOptions {
  /** The operator's key or .pfx: every catalog and chunk is read. */
  material?: DecryptWith;
  /** What this machine remembers of the share's repository (its id and host keys), when it does. */
  remembered?: RepositoryHostKeys & { id: string };
  /** Writes the index anew from the packs when it is lost, damaged or incomplete (needs keys). */
  repair?: boolean;
  /** Asked before -Repair writes or deletes anything; false skips the repair. */
  confirmRepair?: (what: string) => Promise<boolean>;
  allowUnauthenticated?: boolean;
}

const CHECKED: Record<RepositoryTestRecord['Mode'], string> = {
  Hash:
    'Integrity without keys: every pack and index file against its name, every pack a backup names present, each backup folder ' +
    'against its BackupInfo.xml. Tables of contents, index entries and chunks are not checked: give the key or the .pfx, or run ' +
    'it on the machine that makes the backups.',
  Structure:
    "Integrity with the backup host's keys: as without keys, plus every pack's table of contents authenticated and compared with " +
    'the index files. Chunks are not opened (the host cannot read them): give the key or the .pfx for that.',
  ReadData:
    'Everything: as with the host keys, plus every backup authenticated, its catalogs opened, and every chunk they list read from ' +
    'its pack and authenticated as its id.',
};

/** Where what is known of a pack is gathered: who needs it, what the catalogs and the index say lies in it. */
interface PackFacts {
  /** Backups that name it in BackupInfo.xml. */
  namedBy: Set<string>;
  /** backup/role pairs whose catalogs place chunks in it. */
  roles: Set<string>;
  /** Catalog chunks in it by offset, with how often the catalogs list each. */
  wanted: Map<number, { entry: PackEntry; refs: number }>;
  /** Index entries in it by offset. */
  indexed: Map<number, ChunkLocation>;
  /** The index files those entries are in. */
  indexedIn: Set<string>;
}

interface Run {
  target: Target;
  layout: RepositoryLayout;
  keys?: RepositoryKeys;
  opts: RepositoryCheckOptions;
  progress: ProgressReporter;
  record: RepositoryTestRecord;
  facts: Map<string, PackFacts>;
  /** Every chunk id some index file lists. */
  index: ChunkIndex;
  indexFiles: string[];
  /** With -Repair: each sound pack's table of contents. */
  tocs: Map<string, PackEntry[]>;
}

function factsOf(run: Run, pack: string): PackFacts {
  let f = run.facts.get(pack);
  if (!f) {
    f = { namedBy: new Set(), roles: new Set(), wanted: new Map(), indexed: new Map(), indexedIn: new Set() };
    run.facts.set(pack, f);
  }
  return f;
}

function problem(run: Run, Severity: ProblemSeverity, Kind: string, Path: string, Message: string, Backups: string[] = []): void {
  run.record.Problems.push({ Severity, Kind, Path, Backups, Message });
}

export async function checkRepository(
  target: Target,
  location: string,
  opts: RepositoryCheckOptions,
  progress: ProgressReporter,
): Promise<RepositoryTestRecord> {
  const layout = new RepositoryLayout();
  const record: RepositoryTestRecord = {
    Path: location,
    RepositoryId: null,
    Mode: 'Hash',
    IsValid: true,
    BackupsChecked: 0,
    RepositoryBackups: 0,
    PacksChecked: 0,
    PacksDamaged: 0,
    PacksMissing: 0,
    OrphanPacks: 0,
    IndexFiles: 0,
    IndexEntries: 0,
    ChunksAuthenticated: 0,
    BytesRead: 0,
    IndexRebuilt: null,
    Checked: '',
    Problems: [],
  };
  const run: Run = { target, layout, opts, progress, record, facts: new Map(), index: new ChunkIndex(), indexFiles: [], tocs: new Map() };
  const config = await openConfig(run);
  record.Checked = CHECKED[record.Mode];
  // Index files are listed before packs: every pack an index file names was complete before it,
  // so it is in the pack listing below (what makes -Repair's replacement cover every listed file).
  await readIndexFiles(run);
  // With their listed sizes: a file too large to be a pack is refused unread (scanPack).
  const present = await listPackSizes(target, layout);
  await checkBackups(run, config);
  await checkPacks(run, present);
  if (opts.repair) await repairIndex(run, present);
  record.IsValid = !record.Problems.some((p) => p.Severity === 'Error');
  progress.report({ activity: 'Test repository', status: 'Done', percentComplete: 100, id: 0, completed: true });
  return record;
}

/** The repository's config and the keys the check can use: the material's, else the host keys this machine keeps. */
async function openConfig(run: Run): Promise<RepositoryConfig | undefined> {
  const configFile = `${run.layout.root}/config.xml`;
  let config: RepositoryConfig | undefined;
  try {
    config = await readRepositoryConfig(run.target, run.layout);
  } catch (e) {
    if (!isAzsError(e) || e.alertType) throw e;
    problem(run, 'Error', 'RepositoryConfigDamaged', configFile, e.message);
    return undefined;
  }
  if (!config) return undefined;
  run.record.RepositoryId = config.id;
  if (run.opts.material) {
    run.keys = deriveRepositoryKeys(unwrapMaster(config, run.opts.material));
    run.record.Mode = 'ReadData';
  } else if (run.opts.remembered?.id === config.id) {
    run.keys = hostKeysFrom(run.opts.remembered);
    if (!run.keys.publicKey.equals(config.publicKey))
      problem(run, 'Error', 'RepositoryConfigDamaged', configFile, "its public key is not the one this machine's backups were made for");
    run.record.Mode = 'Structure';
  }
  return config;
}

/** Every index file: its bytes against its name; with keys, its entries (which packs they place chunks in). */
async function readIndexFiles(run: Run): Promise<void> {
  const { target, layout, record } = run;
  const listed = (await target.list(layout.indexFolder)).filter((e) => !e.isDirectory && layout.indexHashOf(e.name));
  const names = listed.map((e) => e.name);
  run.indexFiles = names;
  record.IndexFiles = names.length;
  const files = await readListedIndexFiles(target, layout, listed);
  for (const [i, name] of names.entries()) {
    const path = `${layout.indexFolder}/${name}`;
    const file = files[i];
    if (!file) continue; // removed since listed (a prune replacing it)
    if (!Buffer.isBuffer(file)) {
      problem(run, 'Error', 'IndexDamaged', path, file.message);
      continue;
    }
    record.BytesRead += file.length;
    if (createHash('sha256').update(file).digest('hex') !== layout.indexHashOf(name)) {
      problem(run, 'Error', 'IndexDamaged', path, `The index file ${name} does not hash to its name: it was changed.`);
      continue;
    }
    if (!run.keys) continue;
    try {
      for (const loc of decodeIndexFile(run.keys, name, file)) {
        const f = factsOf(run, loc.pack);
        f.indexed.set(loc.offset, loc);
        f.indexedIn.add(name);
        run.index.add(loc);
        record.IndexEntries++;
      }
    } catch (e) {
      if (!isAzsError(e)) throw e;
      problem(run, 'Error', 'IndexDamaged', path, e.message);
    }
  }
}

/** Every committed backup's folder, and what its BackupInfo.xml and (with the material) its catalogs say of the packs. */
async function checkBackups(run: Run, config: RepositoryConfig | undefined): Promise<void> {
  const { backups, leftovers } = await listShare(run.target);
  lostBackupInfos(run, leftovers);
  // config.xml's own public key: no key is needed to see that it is not the one a backup is bound to.
  const fingerprint = config && keyFingerprint(config.publicKey);
  for (const [i, entry] of backups.entries()) {
    run.progress.report({
      activity: 'Test repository',
      status: `backup ${entry.name} (${i + 1} of ${backups.length})`,
      percentComplete: Math.floor((i / backups.length) * 20),
      id: 0,
    });
    let checked: Awaited<ReturnType<typeof checkBackupFolder>>;
    try {
      checked = await checkBackupFolder(run.target, entry.name, run.opts.material, run.progress, {
        allowUnauthenticated: run.opts.allowUnauthenticated,
      });
    } catch (e) {
      if (!isAzsError(e) || e.alertType) throw e;
      // Material that does not open one backup (made for an older key) leaves it unchecked, not damaged.
      problem(run, 'Warning', 'BackupNotChecked', entry.folder, e.message, [entry.name]);
      continue;
    }
    run.record.BackupsChecked++;
    for (const bad of checked.record.Files.filter((f) => !f.Succeeded))
      problem(run, 'Error', 'BackupDamaged', `${entry.folder}/${bad.File}`, bad.Message, [entry.name]);
    const reference = checked.opened?.info.repository;
    if (!reference) continue;
    run.record.RepositoryBackups++;
    if (reference.id !== config?.id || (fingerprint && reference.keyFingerprint !== fingerprint)) {
      const where = config ? `repository ${config.id}${reference.id === config.id ? ' with another key' : ''}` : 'no repository';
      problem(
        run,
        'Error',
        'RepositoryMismatch',
        `${entry.folder}/BackupInfo.xml`,
        `It needs repository ${reference.id}; the share holds ${where}.`,
        [entry.name],
      );
    }
    for (const pack of reference.packs) factsOf(run, pack).namedBy.add(entry.name);
    for (const rc of checked.catalogs) noteCatalog(run, entry.name, entry.folder, new Set(reference.packs), rc);
  }
}

/**
 * Backup folders (named by a GUID, no suffix) without BackupInfo.xml. A backup is written under
 * `<name>.partial` and renamed once complete, so where renames are renames such a folder is a
 * committed backup that lost it: gone from every listing, checked by nothing, and a leftover prune
 * deletes. Where backups are written in place (a blob container) it may be one running elsewhere.
 */
function lostBackupInfos(run: Run, leftovers: readonly string[]): void {
  const inPlace = run.target.renameCopies === true;
  for (const folder of leftovers) {
    const [, stamp, name, ...below] = folder.split('/');
    if (stamp === undefined || name === undefined || below.length > 0 || !isBackupName(name)) continue;
    const path = `${folder}/${INFO_FILE}`;
    const backups = [name.toLowerCase()];
    if (inPlace && Date.now() - stampTime(stamp).getTime() < FOREIGN_PARTIAL_GRACE_MS) {
      problem(run, 'Information', 'BackupInProgress', path, 'A backup running now (or interrupted) is written here.', backups);
      continue;
    }
    problem(
      run,
      inPlace ? 'Warning' : 'Error',
      'BackupInfoMissing',
      path,
      `The folder of backup ${name} has no ${INFO_FILE}${inPlace ? ' (a backup interrupted, or its file lost)' : ' (it was deleted)'}: the backup cannot be listed, checked or restored, and prune deletes the folder as a leftover. Put ${INFO_FILE} back from a copy of the share if there is one.`,
      backups,
    );
  }
}

/** One opened catalog: its chunks must lie in packs its backup names, and be indexed; they are wanted from their packs. */
function noteCatalog(run: Run, backup: string, folder: string, named: Set<string>, { role, catalog }: RoleCatalog): void {
  const who = `${backup}/${role}`;
  const outside = new Set<string>();
  let unindexed = 0;
  for (const c of catalog.chunks) {
    if (!named.has(c.pack)) outside.add(c.pack);
    if (!run.index.has(c.chunkId)) unindexed++;
    const f = factsOf(run, c.pack);
    f.roles.add(who);
    const known = f.wanted.get(c.offset);
    if (known) known.refs++;
    else f.wanted.set(c.offset, { entry: c, refs: 1 });
  }
  for (const pack of outside) {
    problem(
      run,
      'Error',
      'CatalogOutsidePacks',
      run.layout.packPath(pack),
      `The catalog of role ${role} places chunks in this pack, which its BackupInfo.xml does not name: a prune would not keep it.`,
      [who],
    );
  }
  if (unindexed > 0) {
    problem(
      run,
      'Warning',
      'ChunkNotIndexed',
      `${folder}/${catalogFileName(role)}`,
      `${unindexed} of the ${catalog.chunks.length} chunks of role ${role} are in no index file: the next backup stores them again (Test-BackupRepository -Repair rebuilds the index).`,
      [who],
    );
  }
}

/** Every pack on the share or named anywhere, each read once: its hash, its table of contents, the chunks catalogs want of it. */
async function checkPacks(run: Run, present: ReadonlyMap<string, number>): Promise<void> {
  const { record } = run;
  const all = [...new Set([...present.keys(), ...run.facts.keys()])].sort();
  if (run.indexFiles.length === 0 && present.size > 0) {
    problem(
      run,
      'Warning',
      'IndexMissing',
      run.layout.indexFolder,
      'The index folder holds no index file: the next backup rebuilds it from the packs (reading them all once); -Repair does it now.',
    );
  }
  const missing: string[] = [];
  for (const [i, pack] of all.entries()) {
    run.progress.report({
      activity: 'Test repository',
      status: `pack ${i + 1} of ${all.length}`,
      percentComplete: 20 + Math.floor((i / all.length) * 80),
      id: 0,
    });
    const f = run.facts.get(pack);
    const checked = present.has(pack)
      ? await checkPack(
          run.target,
          run.layout,
          pack,
          run.keys,
          f ? [...f.wanted.values()].map((w) => w.entry) : [],
          (e) => {
            record.ChunksAuthenticated += f?.wanted.get(e.offset)?.refs ?? 0;
          },
          present.get(pack),
        )
      : undefined;
    if (checked) record.PacksChecked++;
    if (!checked || checked.missing) {
      missing.push(pack);
      continue;
    }
    if (checked.error) {
      record.PacksDamaged++;
      const needers = f ? [...f.namedBy, ...f.roles].sort() : [];
      const who = needers.length ? ` Needed by ${needers.join(', ')}.` : ' No committed backup names it.';
      problem(
        run,
        'Error',
        isAzsError(checked.error) ? checked.error.errorId : 'PackDamaged',
        run.layout.packPath(pack),
        `${checked.error.message}${who}`,
        needers,
      );
      if (f?.indexed.size) {
        // Backups deduplicate against what the index places, without reading the pack: each would
        // store none of these chunks again and need this pack to be restored.
        problem(
          run,
          'Error',
          'IndexEntryInDamagedPack',
          run.layout.packPath(pack),
          `${f.indexed.size} index entries place chunks in the damaged pack ${pack}: every backup relies on them instead of storing them again, and cannot be restored (-Repair rebuilds the index without this pack).`,
        );
      }
      continue;
    }
    record.BytesRead += checked.size ?? 0;
    if (checked.entries) compareWithIndex(run, pack, checked.entries, f);
    if (!f?.namedBy.size) {
      record.OrphanPacks++;
      problem(
        run,
        'Information',
        'OrphanPack',
        run.layout.packPath(pack),
        'No committed backup names this pack: a backup running now wrote it, or it is garbage that prune removes.',
      );
    }
  }
  await reportMissing(run, missing);
}

/**
 * The missing packs reported against what the share holds now. Reading every pack takes long (hours
 * on a large store), and a prune on another machine meanwhile removes expired backups, the packs
 * only they needed and the index files naming those (it writes their other entries anew first):
 * a pack whose every backup and index file went too is no damage.
 */
async function reportMissing(run: Run, missing: readonly string[]): Promise<void> {
  if (missing.length === 0) return;
  const backups = new Set((await listShare(run.target)).backups.map((b) => b.name));
  const indexFiles = new Set((await run.target.list(run.layout.indexFolder)).map((e) => e.name));
  for (const pack of missing) {
    const f = run.facts.get(pack);
    packMissing(
      run,
      pack,
      f && {
        ...f,
        namedBy: new Set([...f.namedBy].filter((b) => backups.has(b))),
        roles: new Set([...f.roles].filter((r) => backups.has(r.split('/')[0]!))),
        indexed: [...f.indexedIn].some((n) => indexFiles.has(n)) ? f.indexed : new Map(),
      },
    );
  }
}

function packMissing(run: Run, pack: string, f: PackFacts | undefined): void {
  const path = run.layout.packPath(pack);
  const needers = f ? [...f.namedBy, ...f.roles].sort() : [];
  if (needers.length) {
    run.record.PacksMissing++;
    problem(
      run,
      'Error',
      'PackMissing',
      path,
      `The pack ${pack} is missing from the share; ${needers.join(', ')} cannot be restored without it.`,
      needers,
    );
  }
  if (f?.indexed.size) {
    problem(
      run,
      'Error',
      'IndexEntryWithoutPack',
      path,
      `${f.indexed.size} index entries place chunks in the pack ${pack}, which is not on the share: a backup would rely on them and fail (-Repair rebuilds the index).`,
    );
  }
}

/** A sound pack's table of contents against the index: entries that disagree are errors, chunks no index file lists are not. */
function compareWithIndex(run: Run, pack: string, entries: PackEntry[], f: PackFacts | undefined): void {
  const path = run.layout.packPath(pack);
  const toc = new Map(entries.map((e) => [e.offset, e]));
  let disagree = 0;
  for (const [offset, loc] of f?.indexed ?? []) {
    if (!sameEntry(toc.get(offset), loc)) disagree++;
  }
  if (disagree > 0) {
    problem(
      run,
      'Error',
      'IndexDisagrees',
      path,
      `${disagree} index entries for the pack ${pack} do not match its table of contents (-Repair rebuilds the index).`,
    );
  }
  const unindexed = entries.filter((e) => !run.index.has(e.chunkId)).length;
  if (unindexed > 0) {
    problem(
      run,
      'Warning',
      'PackNotIndexed',
      path,
      `${unindexed} of the ${entries.length} chunks of the pack ${pack} are in no index file: backups store them again instead of reusing them (-Repair rebuilds the index).`,
    );
  }
  if (run.opts.repair) run.tocs.set(pack, entries);
}

function sameEntry(a: PackEntry | undefined, b: PackEntry): boolean {
  return a?.chunkId.equals(b.chunkId) === true && a.length === b.length && a.plaintextLength === b.plaintextLength;
}

const INDEX_KINDS = new Set([
  'IndexMissing',
  'IndexDamaged',
  'IndexEntryWithoutPack',
  'IndexEntryInDamagedPack',
  'IndexDisagrees',
  'PackNotIndexed',
  'ChunkNotIndexed',
]);

/**
 * -Repair: one index file written from the tables of contents of every sound pack, then every index
 * file that was there before deleted (they were listed before the packs, so the new one covers all
 * they could name). Packs that are damaged stay out: the next backup stores their chunks anew. So
 * do packs of a backup that may still be running on another machine (no committed backup and no
 * index file names them, and they are younger than prune's grace): it deletes the packs it has not
 * indexed when it fails or is cancelled, and a backup that deduplicated against them would then
 * need packs that are gone. Their PackNotIndexed warnings stay.
 */
async function repairIndex(run: Run, present: ReadonlyMap<string, number>): Promise<void> {
  const { target, layout, record } = run;
  const fixable = record.Problems.filter((p) => INDEX_KINDS.has(p.Kind));
  if (fixable.length === 0 && !(run.indexFiles.length === 0 && present.size > 0)) return;
  const times = await listPackTimes(target, layout);
  const now = Date.now();
  const unfinished = new Set(
    [...run.tocs.keys()]
      .filter((pack) => !run.facts.get(pack)?.namedBy.size && !run.facts.get(pack)?.indexed.size)
      .filter((pack) => now - (times.get(pack)?.getTime() ?? 0) < FOREIGN_PARTIAL_GRACE_MS)
      .map((pack) => layout.packPath(pack)),
  );
  if (!run.keys) {
    problem(
      run,
      'Warning',
      'RepairNotPossible',
      layout.indexFolder,
      'The index is rebuilt from the packs with the keys only: run -Repair on the machine that makes the backups, or give the key or the .pfx.',
    );
    return;
  }
  const taken = [...run.tocs].filter(([pack]) => !unfinished.has(layout.packPath(pack)));
  const what = `Write the index of ${taken.length} packs anew and delete the ${run.indexFiles.length} index files it replaces`;
  if (run.opts.confirmRepair && !(await run.opts.confirmRepair(what))) return;
  const locations = taken.flatMap(([pack, entries]) => entries.map((e) => ({ ...e, pack })));
  const written = await writeIndexFiles(target, layout, run.keys, locations);
  record.IndexRebuilt = written.length ? written.join(', ') : null;
  for (const name of run.indexFiles)
    if (!written.includes(layout.indexHashOf(name) ?? '')) await target.delete(`${layout.indexFolder}/${name}`);
  for (const p of fixable) if (!(p.Kind === 'PackNotIndexed' && unfinished.has(p.Path))) p.Severity = 'Repaired';
}
