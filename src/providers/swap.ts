import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { mountTable } from '../fs/mount-table.js';
import { copyXattrs } from '../native/folder-stat.js';
import { exchangeNames, renameUnlessExists } from '../native/rename-exchange.js';
import { currentOwner, provablyDead, type Owner } from '../process/owner.js';

/**
 * Putting restored data into place so that a kill -9 at any instant leaves the destination either
 * wholly the old data or wholly the new, never missing, and so that whoever next touches the
 * destination can finish or undo what a killed process left (docs/FORMAT.md, "Restore swap journal").
 *
 * Every staging starts with a journal beside the destination, `.<base>.azs-swap-<id>`, naming its
 * owner (a process that can be proven dead, src/process/owner.ts) and the names it uses:
 * `.<base>.azs-staging-<id>` (what is being restored) and `.<base>.azs-old-<id>` (the old data,
 * set aside). Nothing of ours beside a destination exists without its journal, and a journal goes
 * only after everything it names is gone, so recovery deletes only what a journal of a dead owner
 * names, and only once the journal's state says which copy is which.
 *
 * A folder is swapped with renameat2(RENAME_EXCHANGE) where the kernel and file system offer it:
 * one step, after which the staging name holds the old folder; before or after it, the staging
 * name is a leftover and the destination whole. Elsewhere (no addon, AZSBACKUP_NATIVE=off, a file
 * system without the flag) the journal is rewritten durably to phase `swapping` before the first of
 * two renames (destination aside, staging in), which tells recovery to put the old folder back if
 * the destination is missing, or to remove it once the new one is in place.
 *
 * The root of a mounted file system cannot be renamed, so a destination that is a mount point has
 * its contents swapped instead, entry by entry, with every name inside it (`.azs-swap-<id>`,
 * `.azs-staging-<id>`, `.azs-old-<id>`): the old entries go aside, then the staged ones come in.
 * The journal says which of the two moves was under way, so recovery moves the old entries back
 * (killed while they went aside) or the rest of the new ones in (killed while they came in).
 */

const FORMAT = 'azsbackup-swap/1';
const ID_PATTERN = '[A-Za-z0-9_-]{16}';

type Method = 'exchange' | 'rename' | 'file' | 'contents';

/** A folder's own mode, owner and times, which a swap of its contents must give the destination. */
interface FolderAttributes {
  mode: number;
  uid: number;
  gid: number;
  atimeMs: number;
  mtimeMs: number;
}

interface Journal {
  format: typeof FORMAT;
  owner: Owner | null;
  /** contents: `swapping` while the old entries go aside, `moving-in` once they all have. */
  phase: 'staging' | 'swapping' | 'moving-in';
  method?: Method;
  /** The names below lie inside the destination (a mount point), not beside it. */
  within?: boolean;
  /** contents: what the destination folder itself is to become (the staged root's attributes). */
  root?: FolderAttributes;
  /** within: the destination's times before we wrote in it, for when the swap is undone. */
  was?: { atimeMs: number; mtimeMs: number };
  /** The names, all in the destination's folder. */
  dest: string;
  staging: string;
  aside?: string | null;
  /** file: suffixes of the companions (-wal, ...) moved into the staging folder as old<suffix>. */
  companions?: string[];
}

/**
 * TEST ONLY: AZSBACKUP_TEST_SWAP_PAUSE_MS makes a swap wait that long at each of its steps, so a
 * test can kill the process inside the swap window (test/engine/restore-crash.test.ts). Never set
 * it in production: it only slows restores down.
 */
async function testPause(): Promise<void> {
  const ms = Number(process.env.AZSBACKUP_TEST_SWAP_PAUSE_MS ?? 0);
  if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
}

async function syncFolder(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/** A journal written whole and durable, or not at all: a temporary file, fsync, then its name. */
async function writeJournal(file: string, j: Journal, first: boolean): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await fs.open(tmp, 'wx', 0o600);
  try {
    try {
      await fh.writeFile(`${JSON.stringify(j)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (e) {
    // Cut short (a full disk): no journal, and recovery removes only a complete one, so it goes now.
    await fs.unlink(tmp).catch(() => undefined);
    throw e;
  }
  if (first) {
    // link() fails when the name is taken: the id is ours alone.
    await fs.link(tmp, file).finally(() => fs.unlink(tmp));
  } else {
    await fs.rename(tmp, file);
  }
  await syncFolder(path.dirname(file));
}

/** A staged restore of one destination; see the module comment. */
export class Staging {
  /** Set when undoing a failed swap failed too: the journal and what it names stay for recovery. */
  private stuck = false;

  private constructor(
    readonly dest: string,
    /** The staging folder: for a folder, the new folder itself; for a file, the folder holding it. */
    readonly path: string,
    private readonly journalFile: string,
    private readonly journal: Journal,
  ) {}

  /** Records the owner, then makes the (empty, 0700) staging folder. */
  static async begin(dest: string): Promise<Staging> {
    const parent = path.dirname(dest);
    const base = path.basename(dest);
    const id = randomBytes(12).toString('base64url');
    const journal: Journal = {
      format: FORMAT,
      owner: currentOwner() ?? null,
      phase: 'staging',
      dest: base,
      staging: `.${base}.azs-staging-${id}`,
    };
    const journalFile = path.join(parent, `.${base}.azs-swap-${id}`);
    await writeJournal(journalFile, journal, true);
    const staging = path.join(parent, journal.staging);
    await fs.mkdir(staging, { mode: 0o700 }).catch(async (e: unknown) => {
      // Nothing was staged: the journal, which names only the staging, goes with it.
      await fs.unlink(journalFile).catch(() => undefined);
      throw e;
    });
    return new Staging(dest, staging, journalFile, journal);
  }

  /**
   * Staging for a destination that is a mount point: journal and staging folder inside it, on its
   * own file system (beside it they would be on the file system below, where no rename reaches).
   */
  static async beginWithin(dest: string): Promise<Staging> {
    const id = randomBytes(12).toString('base64url');
    const st = await fs.lstat(dest);
    const journal: Journal = {
      format: FORMAT,
      owner: currentOwner() ?? null,
      phase: 'staging',
      within: true,
      dest: path.basename(dest),
      staging: `.azs-staging-${id}`,
      was: { atimeMs: st.atimeMs, mtimeMs: st.mtimeMs },
    };
    const journalFile = path.join(dest, `.azs-swap-${id}`);
    await writeJournal(journalFile, journal, true);
    const staging = path.join(dest, journal.staging);
    await fs.mkdir(staging, { mode: 0o700 }).catch(async (e: unknown) => {
      await fs.unlink(journalFile).catch(() => undefined);
      await setTimes(dest, journal.was!).catch(() => undefined);
      throw e;
    });
    return new Staging(dest, staging, journalFile, journal);
  }

  private named(name: string): string {
    return path.join(this.journal.within ? this.dest : path.dirname(this.dest), name);
  }

  /** Replaces the folder `dest` (or puts it there) by the staging folder. */
  async swapFolderIn(): Promise<void> {
    const parent = path.dirname(this.dest);
    if (!(await exists(this.dest))) {
      // One rename; before it the staging is a leftover, after it there is none.
      await testPause();
      await fs.rename(this.path, this.dest);
      await syncFolder(parent);
    } else {
      await testPause();
      if (exchangeNames(this.path, this.dest)) {
        // The staging name now holds the old folder: a leftover whether or not we get to remove it.
        await syncFolder(parent);
        await testPause();
      } else {
        await this.swapByRenames();
      }
    }
    await this.finish();
  }

  /** The journalled fallback: destination aside, staging in, each step recorded before it is taken. */
  private async swapByRenames(): Promise<void> {
    const aside = `.${this.journal.dest}.azs-old-${this.journal.staging.slice(-16)}`;
    Object.assign(this.journal, { phase: 'swapping', method: 'rename', aside });
    await writeJournal(this.journalFile, this.journal, false);
    await testPause();
    await fs.rename(this.dest, this.named(aside));
    try {
      await testPause();
      await fs.rename(this.path, this.dest);
    } catch (e) {
      await fs.rename(this.named(aside), this.dest).catch(() => {
        this.stuck = true;
      });
      throw e;
    }
    await syncFolder(path.dirname(this.dest));
    await testPause();
    await fs.rm(this.named(aside), { recursive: true, force: true });
  }

  /**
   * Renames the file `candidate` (inside the staging folder) over `dest`, after moving the
   * companions `dest<suffix>` that exist into the staging folder as `old<suffix>`: left in place,
   * SQLite would apply them to the new file. The journal lists them first, so a killed swap is
   * finished (the candidate has gone in) or undone (they are put back).
   */
  async swapFileIn(candidate: string, suffixes: readonly string[]): Promise<void> {
    const present: string[] = [];
    for (const s of suffixes) if (await exists(this.dest + s)) present.push(s);
    Object.assign(this.journal, { phase: 'swapping', method: 'file', companions: present });
    await writeJournal(this.journalFile, this.journal, false);
    const moved: string[] = [];
    try {
      for (const s of present) {
        await testPause();
        await fs.rename(this.dest + s, path.join(this.path, `old${s}`));
        moved.push(s);
      }
      await testPause();
      await fs.rename(candidate, this.dest);
    } catch (e) {
      for (const s of moved.reverse())
        await fs.rename(path.join(this.path, `old${s}`), this.dest + s).catch(() => {
          this.stuck = true;
        });
      throw e;
    }
    await syncFolder(path.dirname(this.dest));
    await testPause();
    await this.finish();
  }

  /**
   * Replaces the contents of the folder `dest` (a mount point, staged with beginWithin) by those
   * of the staging folder, and gives `dest` the staged root's mode, owner and times.
   */
  async swapContentsIn(): Promise<void> {
    const st = await fs.lstat(this.path);
    const aside = `.azs-old-${this.journal.staging.slice(-16)}`;
    const root: FolderAttributes = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, atimeMs: st.atimeMs, mtimeMs: st.mtimeMs };
    Object.assign(this.journal, { phase: 'swapping', method: 'contents', aside, root });
    await writeJournal(this.journalFile, this.journal, false);
    const asidePath = this.named(aside);
    await fs.mkdir(asidePath, { mode: 0o700 });
    try {
      await moveEntries(this.dest, asidePath, await swapStateIn(this.dest));
    } catch (e) {
      // Nothing new came in yet: the old entries go back, and the destination is as it was.
      await moveEntries(asidePath, this.dest)
        .then(() => fs.rmdir(asidePath))
        .catch(() => {
          this.stuck = true;
        });
      throw e;
    }
    await syncFolder(asidePath);
    await syncFolder(this.dest);
    this.journal.phase = 'moving-in';
    await writeJournal(this.journalFile, this.journal, false);
    try {
      await moveEntries(this.path, this.dest);
    } catch (e) {
      // Half of each: only recovery, once this process is gone, finishes it (moving the rest in).
      this.stuck = true;
      throw e;
    }
    await syncFolder(this.dest);
    await testPause();
    await takeRoot(this.path, this.dest, root);
    await fs.rm(asidePath, { recursive: true, force: true, maxRetries: 3 });
    await fs.rm(this.path, { recursive: true, force: true, maxRetries: 3 });
    await fs.unlink(this.journalFile);
    // Last: removing our names changed the folder's times.
    await setTimes(this.dest, root);
    await syncFolder(this.dest);
  }

  /**
   * Gives up: the staging goes, the destination stays as it was. After a swap that could not be
   * undone, nothing is removed: the journal lets the next restore or backup put the old data back.
   */
  async discard(): Promise<void> {
    if (this.stuck) return;
    await this.finish();
  }

  private async finish(): Promise<void> {
    await fs.rm(this.path, { recursive: true, force: true, maxRetries: 3 });
    await fs.unlink(this.journalFile);
    // Writing our names inside the destination changed its times: they are put back.
    if (this.journal.was) await setTimes(this.dest, this.journal.was);
    await syncFolder(this.journal.within ? this.dest : path.dirname(this.dest));
  }
}

/** What recovery did with the swaps found beside one destination. */
export interface Recovery {
  /** Interrupted swaps put right: finished or undone. */
  recovered: number;
  /** Journals left alone: their owner may still run, or their state is not one a swap leaves. */
  leftAlone: string[];
}

/**
 * Finds the swaps of `dest` whose owner is provably dead and finishes or undoes each, so that
 * `dest` holds wholly the old or wholly the new data; then removes what they left. Every restore
 * and backup of a folder or database role calls it before touching the destination.
 */
export async function recoverSwaps(dest: string): Promise<Recovery> {
  const result: Recovery = { recovered: 0, leftAlone: [] };
  const base = path.basename(dest);
  // Beside the destination, and inside it where it is a mount point (its contents swapped in place).
  await recoverIn(path.dirname(dest), `\\.${escapeRegExp(base)}\\.azs-swap-`, base, false, result);
  await recoverIn(dest, '\\.azs-swap-', base, true, result);
  return result;
}

async function recoverIn(folder: string, prefix: string, base: string, within: boolean, result: Recovery): Promise<void> {
  const names = await fs.readdir(folder).catch(() => [] as string[]);
  const journalName = new RegExp(`^${prefix}(${ID_PATTERN})$`);
  for (const name of names) {
    const m = journalName.exec(name);
    if (!m) continue;
    const file = path.join(folder, name);
    const j = await readJournal(file, base, m[1]!, within);
    if (!j || !provablyDead(j.owner ?? undefined)) {
      result.leftAlone.push(file);
      continue;
    }
    if (await recoverOne(folder, j)) {
      await fs.unlink(file);
      // Inside a mount point: the times of the new root once it came in, else those it had.
      const times = j.phase === 'moving-in' ? j.root : j.was;
      if (j.within && times) await setTimes(folder, times);
      await syncFolder(folder);
      result.recovered++;
    } else {
      result.leftAlone.push(file);
    }
  }
  // A journal's temporary file, complete (written before its fsync) and of a dead owner; or empty
  // or cut short, by a kill between its creation and its write (which take microseconds), once it is
  // older than any writer of it could be.
  for (const name of names) {
    const m = new RegExp(`^${prefix}(${ID_PATTERN})\\.tmp$`).exec(name);
    if (!m) continue;
    const file = path.join(folder, name);
    const j = await readJournal(file, base, m[1]!, within);
    const gone = j ? provablyDead(j.owner ?? undefined) : await olderThan(file, UNWRITTEN_JOURNAL_MS);
    // Whether its journal is still there now: the loop above may have recovered and removed it
    // (a kill during the journal's rewrite leaves both), and then this is the last of that swap.
    const journalLeft = await fs.lstat(file.slice(0, -4)).then(
      () => true,
      () => false,
    );
    if (gone && !journalLeft) await fs.unlink(file).catch(() => undefined);
  }
}

/** How old a journal's temporary file that holds no journal must be before it is taken for a killed writer's. */
const UNWRITTEN_JOURNAL_MS = 10 * 60_000;

async function olderThan(file: string, ms: number): Promise<boolean> {
  const st = await fs.lstat(file).catch(() => undefined);
  return st?.isFile() === true && Date.now() - st.mtimeMs > ms;
}

/** The journal, if it is one of ours for `base` and names only what its id allows. */
async function readJournal(file: string, base: string, id: string, within: boolean): Promise<Journal | undefined> {
  let j: Journal;
  try {
    j = JSON.parse(await fs.readFile(file, 'utf8')) as Journal;
  } catch {
    return undefined;
  }
  const prefix = within ? '.azs' : `.${base}.azs`;
  const ok =
    j &&
    j.format === FORMAT &&
    j.dest === base &&
    (j.within === true) === within &&
    (j.method === 'contents') === (within && j.phase !== 'staging') &&
    (j.root === undefined || isFolderAttributes(j.root)) &&
    (j.was === undefined || (Number.isFinite(j.was.atimeMs) && Number.isFinite(j.was.mtimeMs))) &&
    j.staging === `${prefix}-staging-${id}` &&
    (j.aside === undefined || j.aside === null || j.aside === `${prefix}-old-${id}`) &&
    (j.companions === undefined || (Array.isArray(j.companions) && j.companions.every((s) => ['-wal', '-shm', '-journal'].includes(s))));
  return ok ? j : undefined;
}

function isFolderAttributes(a: unknown): a is FolderAttributes {
  const r = a as Record<string, unknown>;
  return typeof a === 'object' && a !== null && ['mode', 'uid', 'gid', 'atimeMs', 'mtimeMs'].every((k) => Number.isFinite(r[k]));
}

/**
 * A contents swap inside `dest`: killed while the old entries went aside, they come back; killed
 * while the new ones came in, the rest of them follow. Either way, what is left of ours goes.
 */
async function recoverContents(dest: string, j: Journal): Promise<boolean> {
  const staging = path.join(dest, j.staging);
  const aside = j.aside ? path.join(dest, j.aside) : undefined;
  try {
    if (j.phase === 'swapping' && aside && (await exists(aside))) {
      await moveEntries(aside, dest);
    } else if (j.phase === 'moving-in' && (await exists(staging))) {
      await moveEntries(staging, dest);
      if (j.root) await takeRoot(staging, dest, j.root);
    }
  } catch {
    // A name taken on both sides: something else changed the folder since. Touch nothing more.
    return false;
  }
  await syncFolder(dest);
  if (aside) await fs.rm(aside, { recursive: true, force: true });
  await fs.rm(staging, { recursive: true, force: true });
  return true;
}

/** True when the swap is finished or undone and its journal may go. */
async function recoverOne(parent: string, j: Journal): Promise<boolean> {
  if (j.within) return j.phase === 'staging' ? rmAndTrue(path.join(parent, j.staging)) : recoverContents(parent, j);
  const dest = path.join(parent, j.dest);
  const staging = path.join(parent, j.staging);
  if (j.phase === 'staging' || j.method === 'exchange') {
    // The destination was never changed, or changed in one step: what the staging name holds
    // (the unfinished new data, or the old data after the exchange) is a leftover.
    await fs.rm(staging, { recursive: true, force: true });
    return true;
  }
  if (j.method === 'rename' && j.aside) {
    const aside = path.join(parent, j.aside);
    const [d, a, s] = await Promise.all([exists(dest), exists(aside), exists(staging)]);
    if (!d && a) {
      // Killed between the two renames: the old folder goes back.
      await fs.rename(aside, dest);
      await syncFolder(parent);
    } else if (d && a && !s) {
      // The new folder is in place; the old one is what is left.
      await fs.rm(aside, { recursive: true, force: true });
      return true;
    } else if (d && a) {
      return false;
    } else if (!d) {
      // Neither the destination nor the old copy: something else removed them. Touch nothing.
      return false;
    }
    await fs.rm(staging, { recursive: true, force: true });
    return true;
  }
  if (j.method === 'file') {
    const candidate = path.join(staging, j.dest);
    if (await exists(candidate)) {
      // The new file never went in: the old one's companions go back beside it.
      for (const s of j.companions ?? []) {
        const old = path.join(staging, `old${s}`);
        if (!(await exists(old))) continue;
        if (await exists(dest + s)) return false;
        await fs.rename(old, dest + s);
      }
      await syncFolder(parent);
    }
    await fs.rm(staging, { recursive: true, force: true });
    return true;
  }
  return false;
}

const WITHIN_NAME = new RegExp(`^\\.azs-(swap|staging|old)-(${ID_PATTERN})(\\.tmp)?$`);

/**
 * Which names inside `dest` (a mount point) belong to a swap, this one's or another's whose
 * journal recovery left alone: those of an id with a journal there. They stay where they are while
 * the old contents go aside; a file merely named like them is contents like any other.
 */
async function swapStateIn(dest: string): Promise<(name: string) => boolean> {
  const names = await fs.readdir(dest);
  const journalled = new Set(names.map((n) => /^\.azs-swap-(.+)$/.exec(n)?.[1]?.replace(/\.tmp$/, '')).filter(Boolean));
  return (name) => {
    const id = WITHIN_NAME.exec(name)?.[2];
    return id !== undefined && journalled.has(id);
  };
}

/**
 * Moves every entry of `from` (but those `kept` says stay) into `to`, one rename each, never over
 * a name that `to` holds: a rename would replace a file or an empty folder there without a word.
 * What comes in from a staging folder is moved whatever its name: a restored file may be named anything.
 */
async function moveEntries(from: string, to: string, kept: (name: string) => boolean = () => false): Promise<void> {
  for (const name of await fs.readdir(from)) {
    if (kept(name)) continue;
    await testPause();
    const a = path.join(from, name);
    const b = path.join(to, name);
    const done = renameUnlessExists(a, b);
    if (done === 'exists' || (done === 'unsupported' && (await exists(b))))
      throw Object.assign(new Error(`'${b}' exists: '${a}' cannot take its name`), { code: 'EEXIST' });
    if (done === 'unsupported') await fs.rename(a, b);
  }
}

/** To the microsecond, as Node sets times. */
async function setTimes(dir: string, t: { atimeMs: number; mtimeMs: number }): Promise<void> {
  await fs.utimes(dir, t.atimeMs / 1000, t.mtimeMs / 1000);
}

/**
 * `dir` becomes what the staged root `staging` is: its extended attributes (an ACL: without the
 * addon, `dir` keeps its own), owner and mode. The mode goes last: with an ACL, its group bits are
 * the ACL's mask.
 */
async function takeRoot(staging: string, dir: string, a: FolderAttributes): Promise<void> {
  copyXattrs(staging, dir);
  if (process.getuid?.() === 0) await fs.chown(dir, a.uid, a.gid);
  await fs.chmod(dir, a.mode);
}

async function rmAndTrue(p: string): Promise<boolean> {
  await fs.rm(p, { recursive: true, force: true });
  return true;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The mount points at `dir` or below it, `dir` itself first when it is one. A swap renames the
 * folder, which the root of a mounted file system cannot take part in (its contents are swapped
 * instead), and a folder holding one would carry it aside with the old data. Without /proc/self/mountinfo, `dir` is taken for a mount
 * point when it lies on another device than its parent; mounts below it are then not seen.
 */
export async function mountsAtOrBelow(dir: string): Promise<string[]> {
  const table = await mountTable();
  if (table === undefined) {
    const [own, parent] = await Promise.all([fs.stat(dir), fs.stat(path.dirname(dir))]);
    return own.dev !== parent.dev ? [dir] : [];
  }
  const points = table.map((m) => m.point).filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => a.length - b.length || a.localeCompare(b));
}

/**
 * The destination as the providers replace it: a registered path that is a symbolic link stays a
 * link and its target is replaced. While a killed swap has left that target missing, the link's
 * own target is where its journal lies.
 */
export async function resolveDestination(p: string): Promise<string> {
  const abs = path.resolve(p);
  try {
    return await fs.realpath(abs);
  } catch {
    const link = await fs.readlink(abs).catch(() => undefined);
    if (link === undefined) return abs;
    const target = path.resolve(path.dirname(abs), link);
    const parent = await fs.realpath(path.dirname(target)).catch(() => path.dirname(target));
    return path.join(parent, path.basename(target));
  }
}
