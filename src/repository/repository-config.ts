import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { Readable } from 'node:stream';
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { AzsError, ExitCode, isAzsError } from '../errors.js';
import {
  unwrapWith,
  wrapFor,
  wrappedKeysFromXml,
  wrappedKeysToXml,
  type DecryptWith,
  type EncryptFor,
  type WrappedKey,
} from '../crypto/recipient.js';
import { tooLarge } from '../io/bounded-read.js';
import { shareFileLimit } from '../targets/share-errors.js';
import type { Target, TargetEntry } from '../targets/target.js';
import { deriveRepositoryKeys, REPOSITORY_KEY_BYTES, type RepositoryKeys } from './keys.js';
import type { RepositoryLayout } from './layout.js';

/**
 * `AzsRepository/config.xml`: the repository's id, its public key and its master key wrapped for
 * each recipient, exactly as a backup's data key is in BackupInfo.xml (FORMAT.md section 3; the
 * symmetric-key wrap is bound to `AzsRepository <id>`). Written once when the first backup creates
 * the repository, and replaced (whole, atomically) only by Update-BackupEncryption.
 *
 * A backup names the repository it needs by id and by the SHA-256 of its public key inside its
 * authenticated BackupInfo.xml, and a reader checks that the master key it unwrapped yields that
 * public key: a substituted config therefore opens nothing. Its wraps carry a MAC (`WrapsMac`,
 * under a key of the host secret): anyone may wrap a master key for a public .cer, and without it
 * a writer of the share could add a wrap of nothing for the break-glass certificate (or spoil the
 * operations one) and the backup host, which cannot unwrap to check, would take the store as
 * restorable by that certificate and keep adding to it.
 */
export const REPOSITORY_CONFIG_FILE = 'config.xml';
const NS = 'urn:azsbackup:repository:1';
const MAX_CONFIG_BYTES = 256 * 1024;

export interface RepositoryConfig {
  id: string;
  publicKey: Buffer;
  createdDateTime: Date;
  recipients: WrappedKey[];
  /** HMAC of the id, public key and wraps (wrapsMac); absent in configs written before it existed. */
  wrapsMac?: Buffer;
}

/** Whether config.xml's wraps are those a holder of the repository's keys wrote. */
export type WrapsAuthenticity = 'Authentic' | 'Unsealed' | 'Tampered';

/**
 * HMAC-SHA256 under the repository's `wraps` key of "AzsBackup repository wraps v1", the id, the
 * public key and each wrap's kind, id, algorithm and value in file order, every field preceded by
 * its length (uint32, big-endian): FORMAT.md 8.2.
 */
export function wrapsMacOf(config: RepositoryConfig, keys: Pick<RepositoryKeys, 'wraps'>): Buffer {
  const mac = createHmac('sha256', keys.wraps);
  const field = (bytes: Buffer): void => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    mac.update(length).update(bytes);
  };
  field(Buffer.from('AzsBackup repository wraps v1', 'ascii'));
  field(Buffer.from(config.id, 'utf8'));
  field(config.publicKey);
  for (const w of config.recipients) {
    field(Buffer.from(w.kind, 'utf8'));
    field(Buffer.from(w.id, 'utf8'));
    field(Buffer.from(w.algorithm, 'utf8'));
    field(w.value);
  }
  return mac.digest();
}

export function wrapsAuthenticity(config: RepositoryConfig, keys: Pick<RepositoryKeys, 'wraps'>): WrapsAuthenticity {
  if (!config.wrapsMac) return 'Unsealed';
  return timingSafeEqual(config.wrapsMac, wrapsMacOf(config, keys)) ? 'Authentic' : 'Tampered';
}

/** The config with its wraps' MAC, made with the master key (whoever holds it may say for whom it is wrapped). */
function sealedWraps(config: RepositoryConfig, master: Buffer): RepositoryConfig {
  return { ...config, wrapsMac: wrapsMacOf(config, deriveRepositoryKeys(master)) };
}

/** What names a repository's key: SHA-256 of its public key, hex. */
export function keyFingerprint(publicKey: Buffer): string {
  return createHash('sha256').update(publicKey).digest('hex');
}

const wrapContext = (id: string) => `AzsRepository ${id}`;
const configPath = (layout: RepositoryLayout) => `${layout.root}/${REPOSITORY_CONFIG_FILE}`;

export function serializeRepositoryConfig(config: RepositoryConfig): string {
  const builder = new XMLBuilder({ ignoreAttributes: false, format: true, indentBy: '  ' });
  const doc = {
    Repository: {
      '@_xmlns': NS,
      '@_Version': 1,
      '@_Id': config.id,
      '@_PublicKey': config.publicKey.toString('hex'),
      '@_CreatedDateTime': config.createdDateTime.toISOString(),
      ...(config.wrapsMac ? { '@_WrapsMac': config.wrapsMac.toString('hex') } : {}),
      Recipient: wrappedKeysToXml(config.recipients),
    },
  };
  return `<?xml version="1.0" encoding="utf-8"?>\n${builder.build(doc) as string}`;
}

export function configDamaged(detail: string): AzsError {
  return new AzsError(`The repository's ${REPOSITORY_CONFIG_FILE} on the share is not usable: ${detail}.`, {
    errorId: 'RepositoryConfigDamaged',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    targetObject: REPOSITORY_CONFIG_FILE,
    recommendedAction:
      'Put back AzsRepository/config.xml from a copy of the share if there is one; backups made before it changed need it to restore.',
  });
}

export function parseRepositoryConfig(text: string): RepositoryConfig {
  // biome-ignore lint/suspicious/noExplicitAny: the parser's output has no static shape; every field read is checked
  let raw: any;
  try {
    raw = new XMLParser({
      ignoreAttributes: false,
      parseTagValue: false,
      parseAttributeValue: false,
      isArray: (n) => n === 'Recipient',
    }).parse(text).Repository;
  } catch (e) {
    throw configDamaged(`it is not readable XML (${(e as Error).message})`);
  }
  if (raw?.['@_Version'] !== '1') throw configDamaged('it is not a version 1 repository configuration');
  const id = String(raw['@_Id']);
  const publicKey = Buffer.from(String(raw['@_PublicKey']), 'hex');
  const createdDateTime = new Date(String(raw['@_CreatedDateTime']));
  if (!/^[0-9a-f-]{36}$/.test(id) || publicKey.length !== 32 || Number.isNaN(createdDateTime.getTime()))
    throw configDamaged('its Id, PublicKey or CreatedDateTime is malformed');
  const recipients = wrappedKeysFromXml(raw.Recipient ?? []);
  if (recipients.some((r) => r.kind !== 'Certificate' && r.kind !== 'Key')) throw configDamaged("a Recipient's Kind is unknown");
  const mac = raw['@_WrapsMac'];
  if (mac === undefined) return { id, publicKey, createdDateTime, recipients };
  // A malformed MAC is a MAC that does not verify: the wraps are judged, not the file refused.
  const wrapsMac = typeof mac === 'string' && /^[0-9a-f]{64}$/.test(mac) ? Buffer.from(mac, 'hex') : Buffer.alloc(32);
  return { id, publicKey, createdDateTime, recipients, wrapsMac };
}

/**
 * The repository's config on the share; undefined when there is no repository yet. One larger than
 * a config can be is refused (FileTooLarge) from its size, unfetched: smbclient brings a file whole
 * onto the local disk before it can be refused. The size is the caller's listing of it (`listed`,
 * null when that listing had none) where it has one, which spares a round trip on SMB; else a stat.
 */
export async function readRepositoryConfig(
  target: Target,
  layout: RepositoryLayout,
  listed?: TargetEntry | null,
): Promise<RepositoryConfig | undefined> {
  const entry = listed === undefined ? await target.stat(configPath(layout)) : listed;
  if (!entry) return undefined;
  if (!entry.isDirectory && entry.size > MAX_CONFIG_BYTES)
    throw tooLarge(configPath(layout), shareFileLimit(target.location, MAX_CONFIG_BYTES), entry.size);
  const [file] = await target.readSmallFiles([configPath(layout)], MAX_CONFIG_BYTES);
  if (file === undefined) return undefined;
  if (!Buffer.isBuffer(file)) throw file;
  return parseRepositoryConfig(file.toString('utf8'));
}

/**
 * Creates the repository: a new master key wrapped for `recipients`. The config is written under a
 * temporary name and renamed into place, and a rename never replaces: if another writer created a
 * repository meanwhile, theirs stays and is returned with `master` undefined. `beforePublish` runs
 * just before the rename: whatever the writer must keep of the master key (the backup host's keys)
 * is kept by then, so a writer killed after the rename never leaves a repository it cannot use.
 */
export async function createRepository(
  target: Target,
  layout: RepositoryLayout,
  recipients: readonly EncryptFor[],
  beforePublish?: (config: RepositoryConfig, master: Buffer) => Promise<void>,
): Promise<{ config: RepositoryConfig; master?: Buffer }> {
  const master = randomBytes(REPOSITORY_KEY_BYTES);
  const id = randomUUID();
  const config = sealedWraps(
    {
      id,
      publicKey: deriveRepositoryKeys(master).publicKey,
      createdDateTime: new Date(),
      recipients: recipients.map((r) => wrapFor(r, master, wrapContext(id))),
    },
    master,
  );
  const temporary = `${layout.root}/.config-${randomBytes(8).toString('hex')}.xml`;
  await target.write(temporary, Readable.from([Buffer.from(serializeRepositoryConfig(config), 'utf8')]));
  try {
    await beforePublish?.(config, master);
    await target.rename(temporary, configPath(layout));
    return { config, master };
  } catch (e) {
    await target.delete(temporary).catch(() => undefined);
    const theirs = await readRepositoryConfig(target, layout).catch(() => undefined);
    if (theirs) return { config: theirs };
    throw e;
  }
}

/**
 * Replaces the config with one whose master key is wrapped for `recipients` (Update-BackupEncryption),
 * and, with `keepOthers`, still for those it was wrapped for before (while some backups are re-wrapped
 * and others are not yet, both materials must open the repository); given as a test of a wrap's id
 * (upper case), for those of them it names.
 */
export async function rewrapRepository(
  target: Target,
  layout: RepositoryLayout,
  config: RepositoryConfig,
  master: Buffer,
  recipients: readonly EncryptFor[],
  keepOthers: boolean | ((id: string) => boolean) = false,
): Promise<RepositoryConfig> {
  const wrapped = recipients.map((r) => wrapFor(r, master, wrapContext(config.id)));
  const ids = new Set(wrapped.map((w) => w.id.toUpperCase()));
  const keep = typeof keepOthers === 'function' ? keepOthers : () => keepOthers;
  const kept = config.recipients.filter((w) => !ids.has(w.id.toUpperCase()) && keep(w.id.toUpperCase()));
  const next = sealedWraps({ ...config, recipients: [...wrapped, ...kept] }, master);
  await target.write(configPath(layout), Readable.from([Buffer.from(serializeRepositoryConfig(next), 'utf8')]));
  return next;
}

/**
 * The master key, unwrapped with the operator's material, checked against the public key the
 * backup expects (`fingerprint`, from its authenticated BackupInfo.xml) when one is given.
 */
export function unwrapMaster(config: RepositoryConfig, material: DecryptWith, fingerprint?: string): Buffer {
  let master: Buffer;
  try {
    master = unwrapWith(material, config.recipients, wrapContext(config.id));
  } catch (e) {
    if (!isAzsError(e) || e.errorId !== 'WrongDecryptionMaterial') throw e;
    const recorded = config.recipients.map((w) => `${w.kind === 'Certificate' ? 'certificate' : 'key'} ${w.id}`).join(', ');
    throw new AzsError(`The repository on the share is not encrypted for the material given; it is encrypted for ${recorded}.`, {
      errorId: 'WrongDecryptionMaterial',
      category: 'SecurityError',
      exitCode: ExitCode.Integrity,
      targetObject: config.id,
      recommendedAction: 'Give the .pfx or the key that the repository was made or last re-encrypted for (Update-BackupEncryption).',
    });
  }
  const publicKey = deriveRepositoryKeys(master).publicKey;
  if (!publicKey.equals(config.publicKey) || (fingerprint !== undefined && keyFingerprint(publicKey) !== fingerprint))
    throw configDamaged('its key is not the one the backup was made with (the file was replaced)');
  return master;
}
