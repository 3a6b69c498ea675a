import { readFileSync } from 'node:fs';
import type { ArchiveExport, ArchiveMember } from '../providers/provider.js';
import type { ChunkRefs } from '../repository/chunk-refs.js';
import type { ChunkStore, StoredStream, StreamSink } from '../repository/chunk-store.js';
import { FilesCacheBuilder, type FilesCache } from './files-cache.js';

/**
 * An archive stored member by member (a directory role into the repository). Each member, its
 * header then its data and padding, is cut into chunks on its own (a chunker per member), so a
 * file's chunks depend only on its header and contents, and a file the files cache knows
 * unchanged is not read at all: its recorded chunks are appended in its place. The trailer (the
 * end-of-archive blocks) is the last chunk. The stream's chunks in order are still exactly the
 * archive's bytes, so the catalog and the restore are those of any other stream.
 */

export interface StoredMembers {
  stream: StoredStream;
  /** The cache the next backup will use, to be saved once this one commits. */
  next: FilesCacheBuilder;
  /** Regular files taken from the cache unread, and regular files read. */
  reused: number;
  read: number;
}

export async function storeMembers(
  store: ChunkStore,
  archive: ArchiveExport,
  previous: FilesCache | undefined,
  onBytes: (total: number) => void,
): Promise<StoredMembers> {
  const sink = store.openStream();
  const next = new FilesCacheBuilder();
  // Before any member's lstat: a ctime older than this, by the clock's window, was set before it.
  const startedNs = BigInt(Date.now()) * 1_000_000n;
  const counts = { reused: 0, read: 0, bytes: 0 };
  try {
    for await (const member of archive.members) {
      const file = member.kind === 'file';
      const cached = file ? previous?.match(member) : undefined;
      let refs: ChunkRefs;
      if (cached && allKnown(sink, cached)) {
        sink.reuse(cached);
        refs = cached;
        counts.reused++;
        for (let c = 0; c < cached.length; c++) counts.bytes += cached.lengthAt(c);
      } else {
        refs = await readMember(store, sink, member, archive.recycle, (n) => onBytes((counts.bytes += n)));
        if (file) counts.read++;
      }
      // Once its chunks have their ids (they are named on the packers' threads meanwhile). A file
      // taken from the cache was settled when it went in, and its ctime has not moved since.
      const writeback = member.pagesWrittenBack ? 0n : DIRTY_PAGES_NS;
      const keep = cached === refs || settled(member, startedNs, archive.localDevice, writeback);
      if (file && keep && !archive.neverWrittenBack?.has(member.stat.dev)) sink.after(() => next.add(member, refs));
      onBytes(counts.bytes);
    }
    await sink.put([archive.trailer]);
    onBytes((counts.bytes += archive.trailer.length));
  } catch (e) {
    // Storing failed (the share went away, a packing thread died): that error says what happened,
    // not the folder's "reading failed".
    throw sink.failedWith(e) ? e : archive.explain(e);
  } finally {
    await sink.settle();
  }
  return { stream: await sink.finish(), next, reused: counts.reused, read: counts.read };
}

/**
 * Whether a file's ctime is far enough before the walk began to trust: a file changed again within
 * the same tick of the clock that set its ctime would keep that ctime, so a file changed just
 * before the backup saw it is read again next time instead of being remembered (git's "racy"
 * rule). The clock's window is its tick with room to spare: on a local file system whose ctimes
 * this machine's clock sets to the nanosecond (Linux takes them from a coarse clock, 1-10 ms),
 * 100 ms; elsewhere, or for a ctime of whole seconds (FAT keeps 2 s, some network mounts 1 s, and
 * a server's clock may differ from ours), 3 s. The reference is the start of the walk, before any
 * lstat, not the time the file was read: a change while a large file is read is thus never taken
 * for the state the cache records.
 *
 * A longer window covers writes through a shared mapping (a database's or a log's mmap): Linux
 * moves the times only when a clean page is first written, and later writes to the dirty page
 * move nothing until it is written back, so a file whose ctime is younger than the kernel's
 * writeback delay may still be changing unseen (files-cache-mmap.test.ts). Once written back, the
 * page is clean and the next write through the mapping moves the ctime again; on a file system
 * that writes nothing back (tmpfs: ArchiveExport.neverWrittenBack) no file is remembered at all.
 * A file whose dirty pages the walk handed to writeback before reading it (pagesWrittenBack, where
 * the addon is there) needs only the clock's window: from then on every write moves its ctime.
 * Without that, files changed in the last half minute before a backup were read again by the next
 * one, which doubled what an incremental backup read when backups follow changes closely.
 */
const RACY_NS = 3_000_000_000n;
const LOCAL_RACY_NS = 100_000_000n;
export function settled(
  member: { stat: Pick<ArchiveMember['stat'], 'ctimeNs' | 'dev'> },
  startedNs: bigint,
  localDevice: bigint | undefined,
  writebackNs: bigint | null = DIRTY_PAGES_NS,
): boolean {
  if (writebackNs === null) return false;
  const { ctimeNs, dev } = member.stat;
  const fine = localDevice !== undefined && dev === localDevice && ctimeNs % 1_000_000_000n !== 0n;
  const clock = fine ? LOCAL_RACY_NS : RACY_NS;
  return ctimeNs < startedNs - (writebackNs > clock ? writebackNs : clock);
}

/**
 * How long a page written through a mapping may stay dirty, its later writes unseen: it is
 * written back once older than vm.dirty_expire_centisecs, by the flusher that wakes every
 * vm.dirty_writeback_centisecs (30 s and 5 s by default), plus 5 s to spare; null when the
 * flusher is turned off (0), where no delay is known and nothing is remembered. The defaults where
 * /proc does not say. TEST ONLY: AZSBACKUP_TEST_DIRTY_PAGES_MS replaces it, so that the tests of
 * the clock's windows need not wait 40 s (never set it in production).
 */
function dirtyPagesNs(): bigint | null {
  // Only a whole number of milliseconds counts: anything else in the environment is ignored.
  const test = process.env.AZSBACKUP_TEST_DIRTY_PAGES_MS;
  if (test !== undefined && /^\d{1,12}$/.test(test)) return BigInt(test) * 1_000_000n;
  const centiseconds = (name: string, otherwise: number): number => {
    try {
      const value = Number(readFileSync(`/proc/sys/vm/${name}`, 'utf8').trim());
      return Number.isSafeInteger(value) && value >= 0 ? value : otherwise;
    } catch {
      return otherwise;
    }
  };
  const flusher = centiseconds('dirty_writeback_centisecs', 500);
  if (flusher === 0) return null;
  return BigInt(centiseconds('dirty_expire_centisecs', 3000) + flusher + 500) * 10_000_000n;
}
const DIRTY_PAGES_NS = dirtyPagesNs();

/** Every chunk the cache names is stored, with the length the cache gives it (a cache edited by hand may say otherwise). */
function allKnown(sink: StreamSink, refs: ChunkRefs): boolean {
  for (let c = 0; c < refs.length; c++) if (!sink.knownAs(refs.idAt(c), refs.lengthAt(c))) return false;
  return true;
}

/**
 * One member read and cut on its own; its chunks (a view of the stream's, whose ids are there once
 * sink.after() says so). The sink copies the chunks it is given, so each piece read goes back to
 * the archive's memory once the chunker holds none of it.
 */
async function readMember(
  store: ChunkStore,
  sink: StreamSink,
  member: ArchiveMember,
  recycle: ((piece: Buffer) => void) | undefined,
  onBytes: (n: number) => void,
): Promise<ChunkRefs> {
  const from = sink.count;
  const data = member.data?.();
  if (data === undefined || Buffer.isBuffer(data)) {
    const whole = data ? [member.header, data] : [member.header];
    const length = member.header.length + (data?.length ?? 0);
    // Most members of a tree (folders, links, small files): no cut can fall inside, so the member
    // is its one chunk, and the chunker's work per member is not worth doing.
    if (length < store.wholeBelow) {
      onBytes(length);
      await sink.put([whole]);
      if (data) recycle?.(data);
      return sink.since(from);
    }
  }
  const chunker = store.chunker();
  const out: Buffer[][] = [];
  const read: Buffer[] = [];
  const take = async (piece: Buffer): Promise<void> => {
    chunker.cut(piece, out);
    read.push(piece);
    onBytes(piece.length);
    if (out.length > 0) await sink.put(out);
    while (read.length > 0 && !chunker.holds(read[0]!)) {
      // Not recycle?.(read.shift()): without a recycle the shift would not run, and this never end.
      const done = read.shift()!;
      recycle?.(done);
    }
  };
  chunker.cut(member.header, out);
  onBytes(member.header.length);
  if (Buffer.isBuffer(data)) await take(data);
  else if (data) for await (const piece of data) await take(piece as Buffer);
  chunker.cutEnd(out);
  await sink.put(out);
  for (const piece of read) recycle?.(piece);
  return sink.since(from);
}
