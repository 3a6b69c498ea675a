import type { Readable } from 'node:stream';

/**
 * A provider takes one role's data out of the infrastructure and puts it back. Every provider
 * implements this interface and passes the one conformance suite in
 * test/providers.conformance.test.ts. (The built-in providers also take part in buffer recycling,
 * an optional performance capability of the streams they are given and return:
 * src/memory/recycling-readable.ts. A new provider need not.)
 */

export type ProviderName = 'directory' | 'sqlite' | 'command' | 'postgres';

/** A role as registered in the catalog and recorded in each backup (BackupInfo.xml). */
export interface RoleDefinition {
  name: string;
  provider: ProviderName;
  /** Lower restores first. */
  restoreOrder: number;
  /** directory: the folder. sqlite: the database file. */
  path?: string;
  /** command: argv arrays, run without a shell. */
  exportCommand?: string[];
  importCommand?: string[];
  /** command: time limit in seconds (default 3600). postgres: optional, no limit when absent. */
  timeoutSeconds?: number;
  /** postgres: libpq URI; its password never goes on a child's argv. */
  connectionString?: string;
}

export interface ProviderContext {
  /** Cancels the work; the error then has category OperationStopped (exit 130). */
  signal?: AbortSignal;
  /**
   * Where to restore instead of the registered location (tests, side-by-side restores).
   * directory/sqlite: a path. postgres: a postgresql:// URI or just another database name on the
   * same server. command: passed to the import program as AZSBACKUP_DESTINATION (it decides).
   */
  destination?: string;
  /**
   * import() of a provider that stages calls this once the data is staged and verified, right
   * before the destination changes, and leaves the destination as it was (discarding the staging)
   * if it rejects. A restore of several roles uses it to stage them all before changing any.
   */
  beforeCommit?: () => Promise<void>;
  /**
   * export() may call this with what must be kept beside the data to put it back as it was on a
   * machine that never had it (sqlite: the file's mode and owner). The backup records it in
   * BackupInfo.xml; names and values are short plain strings.
   */
  keep?: (attributes: Record<string, string>) => void;
  /** import(): what the export kept (see `keep`), or undefined for a backup that recorded none. */
  kept?: Readonly<Record<string, string>>;
  /**
   * A folder private to this process (0700, created on first use, see src/process/private-dir.ts)
   * for plaintext a provider must put in a file, such as sqlite's snapshot: a kill -9 must not
   * leave it in TMPDIR. Without it, the system's temporary folder.
   */
  privateDir?: string;
  /** import(): tells the operator something about the restore that did not stop it (a warning). */
  warn?: (message: string) => void;
}

export interface ProviderDescription {
  provider: ProviderName;
  /** What it backs up, for status lines; never a secret. */
  source: string;
}

/**
 * One member of an archive a provider writes member by member (the directory provider's tar):
 * its header bytes exactly as they go into the stream, and its data (contents and padding) read
 * only when asked. A regular file has `data`; everything else is its header alone.
 */
export interface ArchiveMember {
  /** The member's name in the archive, as bytes (unique within an archive). */
  name: Buffer;
  kind: string;
  /** What lstat says of it (mode with the type bits): with its name, what its header is made from. */
  stat: {
    size: number;
    mtimeNs: bigint;
    ctimeNs: bigint;
    ino: bigint;
    dev: bigint;
    mode: number;
    uid: number;
    gid: number;
    /** Present when it has extended attributes (its header then carries them). */
    xattrs?: Buffer;
  };
  /** Made when first asked for: a file the files cache knows unchanged needs none. */
  header: Buffer;
  /** Zero bytes after the data. */
  padding: number;
  /**
   * Call it and take all of it before asking for the next member; not calling it never opens the
   * file. A small file comes whole, read at the call (which throws what reading met); a larger one
   * as a stream read ahead.
   */
  data?: () => Buffer | Readable;
  /**
   * Optional, regular files once data() opened them: true when their dirty pages were handed to
   * writeback before they were read, so that a later write through a shared mapping moves the
   * ctime (without it, a page already dirty takes writes unseen until the kernel writes it back).
   */
  readonly pagesWrittenBack?: boolean;
}

/** An archive as members: their concatenation (headers, data), then `trailer`, is exactly export()'s stream. */
export interface ArchiveExport {
  members: AsyncIterable<ArchiveMember>;
  trailer: Buffer;
  /** A failure of the members or of their data, as the role's error (export()'s errors). */
  explain(error: unknown): Error;
  /** Optional: hands a piece of member data back once nothing holds its bytes, so its memory goes round. */
  recycle?(piece: Buffer): void;
  /**
   * Optional: the device (st_dev) of a local file system the members lie on, whose ctimes this
   * machine's clock sets to the nanosecond: a files cache may trust a member on it that changed
   * shortly before the backup (member-chunks.ts). Absent where that is not known (a network mount,
   * whose server's clock may differ, or a file system that keeps whole seconds).
   */
  localDevice?: bigint;
  /**
   * Optional: devices (st_dev) of file systems kept in memory (tmpfs), which never write a page
   * back: a write through a shared mapping after the first moves no time there, so a files cache
   * remembers no member on them.
   */
  neverWrittenBack?: ReadonlySet<bigint>;
}

export interface Provider {
  describe(): ProviderDescription;
  /**
   * Optional: the same data as export(), member by member, so that a backup can skip reading what
   * it has stored before (the files cache). Cancelling ctx.signal stops it.
   */
  exportMembers?(ctx?: ProviderContext): Promise<ArchiveExport>;
  /**
   * The role's data as one byte stream. Failures found before any byte flows (missing folder or
   * database) reject the promise; failures later make the stream error. Either way the error is an
   * AzsError whose ErrorId names the provider, e.g. a command exiting non-zero: its stderr tail is
   * in the message. Destroying the stream stops the work (a program is killed).
   */
  export(ctx?: ProviderContext): Promise<Readable>;
  /**
   * Put the role back from a stream made by export(). The data is staged and swapped into place only
   * when the stream ended without error, so a failed or interrupted import leaves the role as it was.
   */
  import(data: Readable, ctx?: ProviderContext): Promise<void>;
  /**
   * True when import() cannot stage (it hands bytes to a program as they come): the engine then
   * verifies the whole role file before importing.
   */
  readonly streamsIntoDestination: boolean;
}
