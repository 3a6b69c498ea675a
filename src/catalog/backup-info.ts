import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { AzsError, ExitCode, quoted, usageError } from '../errors.js';
import { wrappedKeysFromXml, wrappedKeysToXml, type EncryptFor, type WrappedKey } from '../crypto/recipient.js';
import type { ProviderName, RoleDefinition } from '../providers/provider.js';

/**
 * BackupInfo.xml: what a backup holds and who can open it. docs/FORMAT.md describes it byte for byte.
 *
 * The file ends with a <Seal> element carrying a SHA-256 digest and an HMAC-SHA256 of every byte
 * before it. The digest lets a keyless check notice damage; the HMAC, keyed from the backup's data
 * key, lets a check with the decryption material notice any deliberate edit as well. Since the data
 * key of a certificate-mode backup can be wrapped by anyone holding the public certificate, the
 * seal also carries one Authenticator per certificate recipient: an HMAC keyed from a secret only
 * that certificate's private key yields (crypto/certificate-authentication.ts). Format 2 binds the
 * stamp folder too.
 */

export const FORMAT_VERSION = 2;
/** Format 3: the role files are catalogs of chunks in the location's deduplicating repository. */
export const REPOSITORY_FORMAT_VERSION = 3;
/** The versions this build reads. */
const READABLE_VERSIONS = [1, 2, 3];
export const BACKUP_DATA_VERSION = '1.0';
/**
 * The largest BackupInfo.xml read: one role takes well under 5 KB (its error text is cut to 4 KiB),
 * so this holds hundreds of roles, and a larger file is refused unread (docs/FORMAT.md).
 */
export const MAX_BACKUP_INFO_BYTES = 2 * 1024 * 1024;

export type BackupStatus = 'Queued' | 'Running' | 'Succeeded' | 'PartialSucceeded' | 'Failed' | 'Skipped' | 'Deleted';

export interface StoredFile {
  name: string;
  size: number;
  sha256: string;
}

export interface RoleRecord {
  definition: RoleDefinition;
  status: BackupStatus;
  /** Bytes the provider exported. */
  size: number;
  durationMs: number;
  error?: string;
  files: StoredFile[];
  /** What the provider kept beside the data (ProviderContext.keep). */
  kept?: Record<string, string>;
  /** Format 3: bytes this role added to the repository (its new chunks as stored), besides its catalog. */
  addedBytes?: number;
}

export interface BackupInfo {
  /** 1: no stamp binding, no authenticators; 2: both. Written as FORMAT_VERSION. */
  formatVersion?: number;
  name: string;
  status: BackupStatus;
  createdDateTime: Date;
  completedDateTime: Date;
  backupDataVersion: string;
  compression: string;
  chunkSize: number;
  recipients: WrappedKey[];
  roles: RoleRecord[];
  /** Format 3: the repository the role catalogs point into, and every pack they need. */
  repository?: RepositoryReference;
}

export interface RepositoryReference {
  /** The repository's id (a GUID), as its config file on the share says. */
  id: string;
  /** SHA-256 of the repository's public key, hex: binds the backup to the one repository key. */
  keyFingerprint: string;
  /** Every pack (SHA-256, hex) a chunk of this backup lies in: what prune keeps and a keyless check verifies. */
  packs: string[];
}

const NS = 'urn:azsbackup:backupinfo:1';
const SEAL =
  /<Seal Digest="([0-9a-f]{64})" Mac="([0-9a-f]{64})"(?:\/>|>((?:\s*<Authenticator Id="[0-9A-F]{40}" Mac="[0-9a-f]{64}"\/>)*)\s*<\/Seal>)\s*<\/BackupInfo>\s*$/;
const AUTHENTICATOR = /<Authenticator Id="([0-9A-F]{40})" Mac="([0-9a-f]{64})"\/>/g;

const hkdf = (ikm: Buffer, info: string): Buffer => Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), Buffer.from(info, 'utf8'), 32));

/**
 * The seal's MAC key, from the data key: bound to the backup's name, and from format 2 on to its
 * stamp folder, so a BackupInfo.xml moved into another backup's or another stamp's folder fails.
 */
export function backupInfoMacKey(dataKey: Buffer, backupName: string, stamp: string, formatVersion = FORMAT_VERSION): Buffer {
  return formatVersion < 2
    ? hkdf(dataKey, `AzsBackup BackupInfo v1\0${backupName}`)
    : hkdf(dataKey, `AzsBackup BackupInfo v2\0${stamp}\0${backupName}`);
}

/** An authenticator's key: from a certificate's authentication key, bound to the backup's stamp and name. */
export function authenticatorKey(certificateAuthenticationKey: Buffer, backupName: string, stamp: string): Buffer {
  return hkdf(certificateAuthenticationKey, `AzsBackup BackupInfo authenticator v2\0${stamp}\0${backupName}`);
}

/** What seals a BackupInfo.xml: the data key's MAC key and one authenticator key per certificate that can prove authorship. */
export interface SealKeys {
  macKey: Buffer;
  authenticators: { thumbprint: string; key: Buffer }[];
}

/** The seal keys of a backup made for these recipients; a certificate without its authentication key adds no authenticator. */
export function sealKeysFor(dataKey: Buffer, backupName: string, stamp: string, recipients: readonly EncryptFor[]): SealKeys {
  return {
    macKey: backupInfoMacKey(dataKey, backupName, stamp),
    authenticators: recipients.flatMap((r) =>
      r.kind === 'Certificate' && r.authenticationKey
        ? [{ thumbprint: r.thumbprint, key: authenticatorKey(r.authenticationKey, backupName, stamp) }]
        : [],
    ),
  };
}

function definitionToXml(d: RoleDefinition): Record<string, unknown> {
  return {
    '@_Provider': d.provider,
    '@_RestoreOrder': d.restoreOrder,
    ...(d.path !== undefined ? { Path: d.path } : {}),
    ...(d.exportCommand ? { ExportCommand: { Arg: d.exportCommand } } : {}),
    ...(d.importCommand ? { ImportCommand: { Arg: d.importCommand } } : {}),
    ...(d.timeoutSeconds !== undefined ? { TimeoutSeconds: d.timeoutSeconds } : {}),
    ...(d.connectionString !== undefined ? { ConnectionString: d.connectionString } : {}),
  };
}

/** A character XML 1.0 cannot carry at all, not even as a character reference. */
const NOT_IN_XML = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const EVERY_NOT_IN_XML = new RegExp(NOT_IN_XML.source, 'gu');

/**
 * A role definition every backup can record in its BackupInfo.xml: a path or argument with, say,
 * an escape character could be backed up but never written into a well-formed file.
 */
export function assertRecordable(role: RoleDefinition): void {
  const fields: [string, string | undefined][] = [
    ['path', role.path],
    ['connection string', role.connectionString],
    ...[...(role.exportCommand ?? []), ...(role.importCommand ?? [])].map((a): [string, string] => ['command argument', a]),
  ];
  for (const [what, value] of fields) {
    if (value === undefined || !NOT_IN_XML.test(value)) continue;
    throw usageError(
      `Role '${role.name}': its ${what} ${JSON.stringify(value)} holds a control character that no backup could record.`,
      'RoleDefinitionNotRecordable',
      role.name,
      'Rename the file or folder, or wrap the command in a script, so that no control characters other than tab and new line remain.',
    );
  }
}

/** The body without its seal; the seal is computed over exactly these bytes. */
function body(info: BackupInfo): string {
  const builder = new XMLBuilder({ ignoreAttributes: false, format: true, indentBy: '  ', suppressEmptyNode: true });
  const doc = {
    BackupInfo: {
      '@_xmlns': NS,
      '@_FormatVersion': info.formatVersion ?? (info.repository ? REPOSITORY_FORMAT_VERSION : FORMAT_VERSION),
      Name: info.name,
      Status: info.status,
      CreatedDateTime: info.createdDateTime.toISOString(),
      CompletedDateTime: info.completedDateTime.toISOString(),
      BackupDataVersion: info.backupDataVersion,
      Encryption: {
        '@_Cipher': 'AES-256-GCM',
        '@_ChunkSize': info.chunkSize,
        '@_Compression': info.compression,
        Recipient: wrappedKeysToXml(info.recipients),
      },
      Roles: {
        Role: info.roles.map((r) => ({
          '@_Name': r.definition.name,
          '@_Status': r.status,
          '@_Size': r.size,
          '@_DurationMs': Math.round(r.durationMs),
          ...(r.addedBytes !== undefined ? { '@_AddedBytes': r.addedBytes } : {}),
          Definition: definitionToXml(r.definition),
          ...(r.kept && Object.keys(r.kept).length
            ? { Kept: Object.entries(r.kept).map(([k, v]) => ({ '@_Name': k, '@_Value': v })) }
            : {}),
          // An error's text is a report (often a program's stderr, with colour codes): what XML
          // cannot carry becomes U+FFFD.
          ...(r.error ? { Error: r.error.replace(EVERY_NOT_IN_XML, '\uFFFD') } : {}),
          File: r.files.map((f) => ({ '@_Name': f.name, '@_Size': f.size, '@_Sha256': f.sha256 })),
        })),
      },
      ...(info.repository
        ? { Repository: { '@_Id': info.repository.id, '@_Key': info.repository.keyFingerprint, Pack: info.repository.packs } }
        : {}),
    },
  };
  // A carriage return is written as a character reference: XML makes a literal one a line feed on
  // reading (every CR the builder leaves comes from a value; its own line breaks are line feeds).
  const xml = (builder.build(doc) as string).replace(/\r/g, '&#13;');
  return `<?xml version="1.0" encoding="utf-8"?>\n${xml.replace(/\n<\/BackupInfo>\n?$/, '\n')}`;
}

export function serializeBackupInfo(info: BackupInfo, keys: SealKeys): string {
  const signed = `${body(info)}  `;
  const digest = createHash('sha256').update(signed).digest('hex');
  const mac = createHmac('sha256', keys.macKey).update(signed).digest('hex');
  if (keys.authenticators.length === 0) return `${signed}<Seal Digest="${digest}" Mac="${mac}"/>\n</BackupInfo>\n`;
  const authenticators = keys.authenticators.map(
    ({ thumbprint, key }) =>
      `    <Authenticator Id="${thumbprint.toUpperCase()}" Mac="${createHmac('sha256', key).update(signed).digest('hex')}"/>\n`,
  );
  return `${signed}<Seal Digest="${digest}" Mac="${mac}">\n${authenticators.join('')}  </Seal>\n</BackupInfo>\n`;
}

/** A certificate-mode backup that carries no proof of who made it (made before format 2, or without the authentication secret). */
export function notAuthenticated(name: string, thumbprint: string): AzsError {
  return new AzsError(
    `Backup ${name} carries no proof that it was made by a holder of certificate ${thumbprint}'s authentication secret: anyone who can write to the share and has the public certificate could have made it.`,
    {
      errorId: 'BackupNotAuthenticated',
      category: 'SecurityError',
      exitCode: ExitCode.Integrity,
      targetObject: name,
      recommendedAction:
        'Restore a backup made since Set-BackupShare was given the .pfx (-DecryptionCertPath). Only if you are sure nobody else could ' +
        'write to the share since this backup was made, add -AllowUnauthenticated.',
    },
  );
}

function damaged(name: string, reason: string): AzsError {
  return new AzsError(`BackupInfo.xml of backup ${name} is damaged or was changed: ${reason}.`, {
    errorId: 'BackupInfoTampered',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    targetObject: name,
    recommendedAction:
      'Do not restore from this backup; restore from another one (Get-InfrastructureBackup) and check the share for tampering.',
  });
}

export interface ParsedBackupInfo {
  info: BackupInfo;
  formatVersion: number;
  /** True when the keyless SHA-256 digest matches. */
  digestValid: boolean;
  /** Throws BackupInfoTampered unless the HMAC matches under this key. */
  authenticate(macKey: Buffer): void;
  /** Thumbprints (upper case) of the certificates whose authenticators the seal carries. */
  authenticatorIds: string[];
  /** Throws BackupNotAuthenticated when the seal has no authenticator for this thumbprint, BackupInfoTampered when it does not match. */
  authenticateCertificate(thumbprint: string, key: Buffer): void;
}

const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function definitionFromXml(name: string, d: Record<string, unknown>): RoleDefinition {
  const args = (v: unknown) => (v === undefined ? undefined : asArray((v as { Arg?: unknown }).Arg).map(String));
  return {
    name,
    provider: String(d['@_Provider']) as ProviderName,
    restoreOrder: Number(d['@_RestoreOrder']),
    ...(d.Path !== undefined ? { path: String(d.Path) } : {}),
    ...(d.ExportCommand !== undefined ? { exportCommand: args(d.ExportCommand) } : {}),
    ...(d.ImportCommand !== undefined ? { importCommand: args(d.ImportCommand) } : {}),
    ...(d.TimeoutSeconds !== undefined ? { timeoutSeconds: Number(d.TimeoutSeconds) } : {}),
    ...(d.ConnectionString !== undefined ? { connectionString: String(d.ConnectionString) } : {}),
  };
}

const STATUSES: readonly string[] = ['Queued', 'Running', 'Succeeded', 'PartialSucceeded', 'Failed', 'Skipped', 'Deleted'];
const PROVIDERS: readonly string[] = ['directory', 'sqlite', 'command', 'postgres'];
const isCount = (n: number) => Number.isSafeInteger(n) && n >= 0;
/** A role's name as Register-InfrastructureRole allows it (its manifest's ValidatePattern and ValidateLength). */
const ROLE_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/**
 * The longest duration a record can carry: .NET's TimeSpan.MaxValue in milliseconds, which every
 * output form of a duration (a TimeSpan in CLIXML, PowerShell's objects) must hold.
 */
const MAX_DURATION_MS = 922_337_203_685_477;
/** Dates of years 1 to 9999, which .NET's DateTime (and so every output form) holds. */
const isWritableDate = (d: Date) => !Number.isNaN(d.getTime()) && d.getUTCFullYear() >= 1 && d.getUTCFullYear() <= 9999;

/** An element as fast-xml-parser gives it: untyped until malformedField has checked it. */
// biome-ignore lint/suspicious/noExplicitAny: the parser's output has no static shape; every field read is checked
type ParsedXml = Record<string, any>;

/**
 * The first field that is not what docs/FORMAT.md says it is, or undefined. Each field is checked
 * here, once, so that nothing downstream meets an invalid date, a NaN size or an element where text
 * belongs (a file with a valid digest is not thereby a file this service wrote).
 */
function malformedField(raw: ParsedXml, info: BackupInfo): string | undefined {
  const notText = ['Name', 'Status', 'CreatedDateTime', 'CompletedDateTime', 'BackupDataVersion'].find((f) => typeof raw[f] !== 'string');
  if (notText) return `its ${notText} is ${raw[notText] === undefined ? 'missing' : 'not text'}`;
  if (!STATUSES.includes(info.status)) return `its Status '${quoted(info.status)}' is not a status`;
  for (const [what, d] of [
    ['CreatedDateTime', info.createdDateTime],
    ['CompletedDateTime', info.completedDateTime],
  ] as const) {
    if (!isWritableDate(d)) return `its ${what} '${quoted(String(raw[what]))}' is not a date and time of the years 1 to 9999`;
  }
  if (!Number.isSafeInteger(info.chunkSize) || info.chunkSize < 4096 || info.chunkSize > 64 * 1024 * 1024)
    return `its ChunkSize '${quoted(String(raw.Encryption?.['@_ChunkSize']))}' is out of range`;
  for (const r of info.recipients) {
    if (r.kind !== 'Certificate' && r.kind !== 'Key')
      return `a Recipient's Kind '${quoted(String(r.kind))}' is neither Certificate nor Key`;
  }
  const repositoryWrong = malformedRepository(info);
  if (repositoryWrong) return repositoryWrong;
  for (const [i, r] of asArray<ParsedXml>(raw.Roles?.Role).entries()) {
    const role = info.roles[i]!;
    const name = role.definition.name;
    if (typeof r['@_Name'] !== 'string' || name === '') return `role ${i + 1} has no name`;
    if (!ROLE_NAME.test(name)) return `role ${i + 1} has a name that no role can have`;
    if (!STATUSES.includes(role.status)) return `role ${name}: its Status '${quoted(role.status)}' is not a status`;
    if (!isCount(role.size) || !isCount(role.durationMs) || (role.addedBytes !== undefined && !isCount(role.addedBytes)))
      return `role ${name}: its Size or DurationMs is not a whole number of bytes or milliseconds`;
    if (role.durationMs > MAX_DURATION_MS) return `role ${name}: its DurationMs is longer than any backup can take`;
    const d = r.Definition ?? {};
    if (!PROVIDERS.includes(role.definition.provider)) return `role ${name}: its Provider '${quoted(role.definition.provider)}' is unknown`;
    if (!Number.isSafeInteger(role.definition.restoreOrder)) return `role ${name}: its RestoreOrder is not a whole number`;
    if (role.definition.timeoutSeconds !== undefined && !isCount(role.definition.timeoutSeconds))
      return `role ${name}: its TimeoutSeconds is not a whole number`;
    const texts = [d.Path, d.ConnectionString, r.Error, ...asArray(d.ExportCommand?.Arg), ...asArray(d.ImportCommand?.Arg)];
    if (texts.some((v) => v !== undefined && typeof v !== 'string')) return `role ${name}: a text field holds markup`;
    for (const f of role.files) {
      if (
        f.name === '' ||
        f.name === '.' ||
        f.name === '..' ||
        f.name.includes('/') ||
        f.name.includes('\\') ||
        !isCount(f.size) ||
        !/^[0-9a-f]{64}$/.test(f.sha256)
      )
        return `role ${name}: its File entry is malformed`;
    }
  }
  // What a listing shows as the backup's size: every stored file and added byte, summed.
  const stored = info.roles.reduce((n, r) => r.files.reduce((m, f) => m + f.size, n + (r.addedBytes ?? 0)), 0);
  if (!isCount(stored)) return 'its sizes add up to more bytes than any backup can hold';
  return undefined;
}

/** Format 3 and only it names a repository, by a GUID, a key fingerprint and packs by their hashes. */
function malformedRepository(info: BackupInfo): string | undefined {
  const repo = info.repository;
  if ((info.formatVersion ?? 1) >= REPOSITORY_FORMAT_VERSION && !repo) return 'it has no Repository element';
  if (!repo) return undefined;
  if ((info.formatVersion ?? 1) < REPOSITORY_FORMAT_VERSION) return 'it names a repository, which its format version has none of';
  if (!/^[0-9a-f-]{36}$/.test(repo.id) || !/^[0-9a-f]{64}$/.test(repo.keyFingerprint)) return 'its Repository element is malformed';
  if (repo.packs.some((p) => !/^[0-9a-f]{64}$/.test(p))) return 'a Pack of its Repository element is not a SHA-256';
  return undefined;
}

/** The XML of BackupInfo.xml as fast-xml-parser reads it; damaged unless it has a BackupInfo element. */
function parseXml(text: string, expectedName: string): ParsedXml {
  try {
    const parser = new XMLParser({
      ignoreAttributes: false,
      parseTagValue: false,
      parseAttributeValue: false,
      // A recorded path or argument is exactly its text: white space at either end is part of it.
      trimValues: false,
      // Character references (`&#13;`, the carriage returns body() writes) read as their characters.
      htmlEntities: true,
      isArray: (name) => ['Recipient', 'Role', 'File', 'Arg', 'Kept', 'Pack'].includes(name),
    });
    const raw = parser.parse(text).BackupInfo;
    if (!raw) throw new Error('no BackupInfo element');
    return raw;
  } catch (e) {
    throw damaged(expectedName, `it is not readable XML (${quoted((e as Error).message)})`);
  }
}

function formatVersionOf(raw: ParsedXml, expectedName: string): number {
  const formatVersion = Number(raw['@_FormatVersion'] ?? 1);
  if (READABLE_VERSIONS.includes(formatVersion)) return formatVersion;
  throw new AzsError(
    `Backup ${expectedName} is in format version ${quoted(String(raw['@_FormatVersion']))}, which this version of AzsBackup does not read.`,
    {
      errorId: 'UnsupportedBackupFormat',
      category: 'InvalidData',
      exitCode: ExitCode.Integrity,
      targetObject: expectedName,
      recommendedAction: 'Use the AzsBackup version that made this backup, or a newer one.',
    },
  );
}

function roleFromXml(r: ParsedXml): RoleRecord {
  return {
    definition: definitionFromXml(String(r['@_Name']), r.Definition ?? {}),
    status: String(r['@_Status']) as BackupStatus,
    size: Number(r['@_Size']),
    durationMs: Number(r['@_DurationMs']),
    ...(r['@_AddedBytes'] !== undefined ? { addedBytes: Number(r['@_AddedBytes']) } : {}),
    ...(r.Error !== undefined ? { error: String(r.Error) } : {}),
    ...(r.Kept !== undefined
      ? { kept: Object.fromEntries(asArray<Record<string, string>>(r.Kept).map((k) => [String(k['@_Name']), String(k['@_Value'])])) }
      : {}),
    files: asArray<Record<string, string>>(r.File).map((f) => ({
      name: String(f['@_Name']),
      size: Number(f['@_Size']),
      sha256: String(f['@_Sha256']),
    })),
  };
}

function infoFromXml(raw: ParsedXml, formatVersion: number): BackupInfo {
  const enc = raw.Encryption ?? {};
  return {
    formatVersion,
    name: String(raw.Name),
    status: String(raw.Status) as BackupStatus,
    createdDateTime: new Date(String(raw.CreatedDateTime)),
    completedDateTime: new Date(String(raw.CompletedDateTime)),
    backupDataVersion: String(raw.BackupDataVersion),
    compression: String(enc['@_Compression']),
    chunkSize: Number(enc['@_ChunkSize']),
    recipients: wrappedKeysFromXml(asArray<Record<string, unknown>>(enc.Recipient)),
    roles: asArray<ParsedXml>(raw.Roles?.Role).map(roleFromXml),
    ...(raw.Repository !== undefined
      ? {
          repository: {
            id: String(raw.Repository['@_Id']),
            keyFingerprint: String(raw.Repository['@_Key']),
            packs: asArray<unknown>(raw.Repository.Pack).map(String),
          },
        }
      : {}),
  };
}

export function parseBackupInfo(text: string, expectedName: string): ParsedBackupInfo {
  if (text.length > MAX_BACKUP_INFO_BYTES) throw damaged(expectedName, `it is larger than ${MAX_BACKUP_INFO_BYTES} bytes`);
  const seal = SEAL.exec(text);
  if (!seal) throw damaged(expectedName, 'its seal is missing or malformed');
  // The writer records only what XML carries (assertRecordable, and U+FFFD in an Error), and the
  // parser would take any character: an escape sequence from the share would reach the terminal.
  if (NOT_IN_XML.test(text)) throw damaged(expectedName, 'it holds a control character that XML does not allow');
  const signed = text.slice(0, seal.index);
  const digestValid = createHash('sha256').update(signed).digest('hex') === seal[1];
  const raw = parseXml(text, expectedName);
  const formatVersion = formatVersionOf(raw, expectedName);
  const info = infoFromXml(raw, formatVersion);
  if (info.name !== expectedName) throw damaged(expectedName, `it names backup ${quoted(info.name)}`);
  const wrong = malformedField(raw, info);
  if (wrong) throw damaged(expectedName, wrong);
  const authenticators = new Map([...(seal[3] ?? '').matchAll(AUTHENTICATOR)].map((m) => [m[1]!, m[2]!]));
  const matches = (key: Buffer, expected: string): boolean =>
    timingSafeEqual(createHmac('sha256', key).update(signed).digest(), Buffer.from(expected, 'hex'));
  return {
    info,
    formatVersion,
    digestValid,
    authenticate(macKey: Buffer) {
      if (!matches(macKey, seal[2]!)) throw damaged(expectedName, 'its authentication code does not match');
    },
    authenticatorIds: [...authenticators.keys()],
    authenticateCertificate(thumbprint: string, key: Buffer) {
      const expected = authenticators.get(thumbprint.toUpperCase());
      if (expected === undefined) throw notAuthenticated(expectedName, thumbprint.toUpperCase());
      if (!matches(key, expected))
        throw damaged(expectedName, `its authenticator for certificate ${thumbprint.toUpperCase()} does not match`);
    },
  };
}
