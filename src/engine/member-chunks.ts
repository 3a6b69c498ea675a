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
      // Once its chunks have their ids (they are named on the packers' threads meanwhile).
      if (file && settled(member, startedNs, archive.localDevice)) sink.after(() => next.add(member, refs));
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
 * rule). The window is the clock's tick with room to spare: on a local file system whose ctimes
 * this machine's clock sets to the nanosecond (Linux takes them from a coarse clock, 1-10 ms),
 * 100 ms; elsewhere, or for a ctime of whole seconds (FAT keeps 2 s, some network mounts 1 s, and
 * a server's clock may differ from ours), 3 s. The reference is the start of the walk, before any
 * lstat, not the time the file was read: a change while a large file is read is thus never taken
 * for the state the cache records.
 */
const RACY_NS = 3_000_000_000n;
const LOCAL_RACY_NS = 100_000_000n;
export function settled(
  member: { stat: Pick<ArchiveMember['stat'], 'ctimeNs' | 'dev'> },
  startedNs: bigint,
  localDevice: bigint | undefined,
): boolean {
  const { ctimeNs, dev } = member.stat;
  const fine = localDevice !== undefined && dev === localDevice && ctimeNs % 1_000_000_000n !== 0n;
  return ctimeNs < startedNs - (fine ? LOCAL_RACY_NS : RACY_NS);
}

function allKnown(sink: StreamSink, refs: ChunkRefs): boolean {
  for (let c = 0; c < refs.length; c++) if (!sink.known(refs.idAt(c))) return false;
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
