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
      if (file && settled(member)) sink.after(() => next.add(member, refs));
      onBytes(counts.bytes);
    }
    await sink.put([archive.trailer]);
    onBytes((counts.bytes += archive.trailer.length));
  } catch (e) {
    throw archive.explain(e);
  } finally {
    await sink.settle();
  }
  return { stream: await sink.finish(), next, reused: counts.reused, read: counts.read };
}

/**
 * Whether a file's ctime is far enough in the past to trust: a file changed again within the same
 * tick of the file system's clock as the change we saw would keep its ctime (Linux takes ctime from
 * a coarse clock, a few ms; FAT and some network mounts have 1-2 s), so a file changed within the
 * last few seconds is read again next time instead of being remembered (git's "racy" rule).
 */
const RACY_NS = 3_000_000_000n;
function settled(member: ArchiveMember): boolean {
  return member.stat.ctimeNs < BigInt(Date.now()) * 1_000_000n - RACY_NS;
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
  const chunker = store.chunker();
  const from = sink.count;
  const out: Buffer[][] = [];
  const read: Buffer[] = [];
  chunker.cut(member.header, out);
  onBytes(member.header.length);
  if (member.data) {
    for await (const piece of member.data()) {
      chunker.cut(piece as Buffer, out);
      read.push(piece as Buffer);
      onBytes((piece as Buffer).length);
      if (out.length > 0) await sink.put(out);
      while (read.length > 0 && !chunker.holds(read[0]!)) recycle?.(read.shift()!);
    }
  }
  chunker.cutEnd(out);
  await sink.put(out);
  for (const piece of read) recycle?.(piece);
  return sink.since(from);
}
