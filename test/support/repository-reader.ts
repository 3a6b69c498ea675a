import {
  constants,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  privateDecrypt,
  sign,
  timingSafeEqual,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import zstd from 'zstd-napi';
import { hkdf, openSealedFile } from './sealed-file.js';

/**
 * An independent reader of AzsBackup backups, written from docs/FORMAT.md alone (not the product's
 * src/repository or src/pipeline): given a share folder, a backup's name and the decryption
 * material, it authenticates the backup and returns each role's plaintext stream, for formats 1
 * and 2 (section 4: the role file) and format 3 (section 8: the catalog's chunks from the packs).
 * The tests compare what it reads with what the product restores: if the two agree, FORMAT.md is
 * enough to restore.
 */

export type ReaderMaterial =
  /** The operator's symmetric key (64 bytes). */
  | { kind: 'Key'; key: Buffer }
  /** A certificate's private key (PEM) and the certificate itself (PEM or DER), as a .pfx holds them. */
  | { kind: 'Certificate'; privateKeyPem: string; certificate: Buffer | string };

export interface ReadBackup {
  formatVersion: number;
  /** Role name → the role's plaintext stream, for every role with a File. */
  roles: Map<string, Buffer>;
}

const EMPTY = Buffer.alloc(0);
const hex = (b: Buffer) => b.toString('hex');
const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const stampOf = (d: Date): string =>
  d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
const parser = new XMLParser({
  ignoreAttributes: false,
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (n) => ['Recipient', 'Role', 'File', 'Pack', 'Authenticator'].includes(n),
});

function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Error(`independent reader: ${what}`);
}

const macEquals = (key: Buffer, data: string, expectedHex: string): boolean =>
  timingSafeEqual(createHmac('sha256', key).update(data, 'utf8').digest(), Buffer.from(expectedHex, 'hex'));

// ------------------------------------------------------------------ section 1: finding the backup

async function backupFolder(share: string, name: string): Promise<{ folder: string; stamp: string }> {
  const root = path.join(share, 'MASBackup');
  for (const stamp of await fs.readdir(root)) {
    const folder = path.join(root, stamp, name);
    if (await fs.stat(path.join(folder, 'BackupInfo.xml')).catch(() => undefined)) return { folder, stamp };
  }
  throw new Error(`independent reader: no committed backup ${name} under ${root}`);
}

// ------------------------------------------------------------------ section 3: recipients

interface Recipient {
  kind: string;
  id: string;
  value: Buffer;
}

function recipientsOf(parent: Record<string, any>): Recipient[] {
  return asArray<Record<string, string>>(parent.Recipient).map((r) => ({
    kind: r['@_Kind']!,
    id: String(r['@_Id']),
    value: Buffer.from(String(r['#text'] ?? ''), 'base64'),
  }));
}

const keyIdOf = (key: Buffer): string => hex(hkdf(key, EMPTY, 'AzsBackup key id v1', 16));
const thumbprintOf = (certificate: Buffer | string): string =>
  createHash('sha1').update(new X509Certificate(certificate).raw).digest('hex').toUpperCase();

/** Section 3 (and 8.2 with context "AzsRepository <id>"): the wrapped key for this material, unwrapped. */
function unwrap(material: ReaderMaterial, recipients: Recipient[], context: string): Buffer {
  if (material.kind === 'Key') {
    const id = keyIdOf(material.key);
    const mine = recipients.find((r) => r.kind === 'Key' && r.id.toLowerCase() === id);
    check(mine !== undefined, `no Key recipient ${id}`);
    const kek = hkdf(
      material.key,
      EMPTY,
      Buffer.concat([Buffer.from('AzsBackup data key wrap v1\0', 'utf8'), Buffer.from(context, 'utf8')]),
    );
    const decipher = createDecipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
    return Buffer.concat([decipher.update(mine.value), decipher.final()]);
  }
  const thumbprint = thumbprintOf(material.certificate);
  const mine = recipients.find((r) => r.kind === 'Certificate' && r.id.toUpperCase() === thumbprint);
  check(mine !== undefined, `no Certificate recipient ${thumbprint}`);
  return privateDecrypt({ key: material.privateKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, mine.value);
}

/** Section 3, "Who made a backup": the certificate's authentication key A. */
function certificateAuthenticationKey(privateKeyPem: string, thumbprint: string): Buffer {
  const message = Buffer.concat([Buffer.from('AzsBackup certificate authentication v1\0', 'utf8'), Buffer.from(thumbprint, 'utf8')]);
  const secret = sign('sha256', message, { key: privateKeyPem, padding: constants.RSA_PKCS1_PADDING });
  return hkdf(secret, EMPTY, 'AzsBackup certificate authentication key v1');
}

// ------------------------------------------------------------------ section 2: BackupInfo.xml

interface OpenedInfo {
  info: Record<string, any>;
  formatVersion: number;
  dataKey: Buffer;
}

/** BackupInfo.xml read, its seal, MAC and (for a certificate) authenticator checked; the data key. */
async function openInfo(folder: string, stamp: string, name: string, material: ReaderMaterial): Promise<OpenedInfo> {
  const text = await fs.readFile(path.join(folder, 'BackupInfo.xml'), 'utf8');
  const at = text.lastIndexOf('<Seal ');
  check(at > 0, 'no seal');
  const signed = text.slice(0, at);
  const seal = /^<Seal Digest="([0-9a-f]{64})" Mac="([0-9a-f]{64})"/.exec(text.slice(at));
  check(seal !== null, 'malformed seal');
  check(createHash('sha256').update(signed, 'utf8').digest('hex') === seal[1], 'the digest does not match');
  const info = parser.parse(text).BackupInfo;
  const formatVersion = Number(info['@_FormatVersion'] ?? 1);
  check([1, 2, 3].includes(formatVersion), `format ${formatVersion}`);
  check(String(info.Name) === name, 'it names another backup');
  check(stampOf(new Date(String(info.CreatedDateTime))) === stamp, 'it lies in another stamp folder');

  const dataKey = unwrap(material, recipientsOf(info.Encryption), name);
  const infoLabel = formatVersion === 1 ? `AzsBackup BackupInfo v1\0${name}` : `AzsBackup BackupInfo v2\0${stamp}\0${name}`;
  check(macEquals(hkdf(dataKey, EMPTY, infoLabel), signed, seal[2]!), 'the MAC does not match');
  if (material.kind === 'Certificate') {
    const thumbprint = thumbprintOf(material.certificate);
    const authenticator = [...text.slice(at).matchAll(/<Authenticator Id="([0-9A-F]{40})" Mac="([0-9a-f]{64})"\/>/g)].find(
      (m) => m[1] === thumbprint,
    );
    check(authenticator !== undefined, `no authenticator for ${thumbprint}`);
    const a = certificateAuthenticationKey(material.privateKeyPem, thumbprint);
    const kAuth = hkdf(a, EMPTY, `AzsBackup BackupInfo authenticator v2\0${stamp}\0${name}`);
    check(macEquals(kAuth, signed, authenticator[2]!), 'the authenticator does not match');
  }
  return { info, formatVersion, dataKey };
}

// ------------------------------------------------------------------ section 8: the repository

interface RepositoryKeys {
  chunkId: Buffer;
  privateKey: KeyObject;
  publicKey: Buffer;
}

/** An X25519 private key from its 32 raw bytes: RFC 8410's PKCS#8 (OID 1.3.101.110). */
function x25519PrivateKey(raw: Buffer): KeyObject {
  const der = Buffer.concat([
    Buffer.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]),
    raw,
  ]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

const x25519PublicKey = (raw: Buffer): KeyObject =>
  createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' });

/** 8.2 and 8.3: config.xml's master key unwrapped, checked against the backup's Repository element. */
async function openRepository(share: string, reference: Record<string, string>, material: ReaderMaterial): Promise<RepositoryKeys> {
  const config = parser.parse(await fs.readFile(path.join(share, 'AzsRepository', 'config.xml'), 'utf8')).Repository;
  check(config['@_Version'] === '1', 'config.xml is not version 1');
  const id = String(config['@_Id']);
  check(id === reference['@_Id'], 'config.xml is another repository');
  const master = unwrap(material, recipientsOf(config), `AzsRepository ${id}`);
  const hostSecret = hkdf(master, EMPTY, 'AzsBackup repository host secret v2');
  const privateKey = x25519PrivateKey(hkdf(master, EMPTY, 'AzsBackup repository private key v2'));
  const publicKey = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url');
  check(hex(publicKey) === String(config['@_PublicKey']), "the master key does not yield config.xml's PublicKey");
  check(createHash('sha256').update(publicKey).digest('hex') === reference['@_Key'], "the master key is not the backup's");
  return { chunkId: hkdf(hostSecret, EMPTY, 'AzsBackup repository chunk id v2'), privateKey, publicKey };
}

interface CatalogEntry {
  chunkId: Buffer;
  pack: string;
  offset: number;
  length: number;
  plaintextLength: number;
}

/** 8.5: the catalog's plaintext parsed. */
function parseCatalog(bytes: Buffer): { streamLength: number; entries: CatalogEntry[] } {
  check(bytes.toString('latin1', 0, 8) === 'AZS-CATL' && bytes[8] === 1 && bytes.subarray(9, 16).every((b) => b === 0), 'not a catalog');
  const streamLength = Number(bytes.readBigUInt64BE(16));
  let at = 24;
  const p = bytes.readUInt32BE(at);
  at += 4;
  const packs = Array.from({ length: p }, (_, i) => hex(bytes.subarray(at + i * 32, at + (i + 1) * 32)));
  at += p * 32;
  const n = bytes.readUInt32BE(at);
  at += 4;
  check(bytes.length === at + n * 48, 'the catalog entries do not fill it');
  const entries: CatalogEntry[] = [];
  for (let i = 0; i < n; i++, at += 48) {
    const pack = packs[bytes.readUInt32BE(at + 32)];
    check(pack !== undefined, `entry ${i} names no listed pack`);
    entries.push({
      chunkId: bytes.subarray(at, at + 32),
      pack,
      offset: bytes.readUInt32BE(at + 36),
      length: bytes.readUInt32BE(at + 40),
      plaintextLength: bytes.readUInt32BE(at + 44),
    });
  }
  check(entries.reduce((s, e) => s + e.plaintextLength, 0) === streamLength, 'the chunks do not sum to the stream length');
  return { streamLength, entries };
}

/** 8.4: a pack's bytes, checked against its name, and its blob key from its header. */
async function openPack(share: string, keys: RepositoryKeys, hash: string): Promise<{ bytes: Buffer; blobKey: Buffer }> {
  const bytes = await fs.readFile(path.join(share, 'AzsRepository', 'packs', hash.slice(0, 2), `${hash}.pack`));
  check(createHash('sha256').update(bytes).digest('hex') === hash, `pack ${hash} does not hash to its name`);
  check(bytes.toString('latin1', 0, 8) === 'AZS-PACK' && bytes[8] === 2 && bytes[9] === 2, `pack ${hash}: not version 2 suite 2`);
  const ephemeral = bytes.subarray(16, 48);
  const shared = diffieHellman({ privateKey: keys.privateKey, publicKey: x25519PublicKey(ephemeral) });
  const info = Buffer.concat([Buffer.from('AzsBackup pack key v2', 'ascii'), ephemeral, keys.publicKey]);
  return { bytes, blobKey: hkdf(shared, EMPTY, info) };
}

/** 8.4: one blob opened as its chunk: GCM with the id in the AAD, the codec, the length, the keyed hash. */
function openBlob(keys: RepositoryKeys, blobKey: Buffer, blob: Buffer, entry: CatalogEntry): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', blobKey, blob.subarray(0, 12));
  decipher.setAAD(Buffer.concat([Buffer.from('AzsBackup blob v1\0', 'ascii'), entry.chunkId]));
  decipher.setAuthTag(blob.subarray(blob.length - 16));
  const payload = Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]);
  const codec = payload[0];
  check(codec === 0 || codec === 1, `unknown codec ${codec}`);
  const plaintext = codec === 0 ? payload.subarray(1) : zstd.decompress(payload.subarray(1));
  check(plaintext.length === entry.plaintextLength, 'a chunk has the wrong length');
  check(createHmac('sha256', keys.chunkId).update(plaintext).digest().equals(entry.chunkId), 'a chunk does not hash to its id');
  return plaintext;
}

/** The role stream a catalog lists, chunk by chunk. */
async function streamOf(share: string, keys: RepositoryKeys, entries: CatalogEntry[]): Promise<Buffer> {
  const packs = new Map<string, { bytes: Buffer; blobKey: Buffer }>();
  const out: Buffer[] = [];
  for (const entry of entries) {
    let pack = packs.get(entry.pack);
    if (!pack) packs.set(entry.pack, (pack = await openPack(share, keys, entry.pack)));
    check(entry.offset >= 48 && entry.offset + entry.length <= pack.bytes.length, 'a chunk lies outside its pack');
    out.push(openBlob(keys, pack.blobKey, pack.bytes.subarray(entry.offset, entry.offset + entry.length), entry));
  }
  return Buffer.concat(out);
}

// ------------------------------------------------------------------ the whole backup

/** Every role's plaintext stream of backup `name` on `share`, authenticated as FORMAT.md says. */
export async function readBackup(share: string, name: string, material: ReaderMaterial): Promise<ReadBackup> {
  const { folder, stamp } = await backupFolder(share, name);
  const { info, formatVersion, dataKey } = await openInfo(folder, stamp, name, material);
  check((formatVersion === 3) === (info.Repository !== undefined), 'Repository element and format disagree');
  const keys = formatVersion === 3 ? await openRepository(share, info.Repository, material) : undefined;
  const roles = new Map<string, Buffer>();
  for (const role of asArray<Record<string, any>>(info.Roles?.Role)) {
    const file = asArray<Record<string, string>>(role.File)[0];
    if (!file) continue;
    const roleName = String(role['@_Name']);
    const fileName = String(file['@_Name']);
    const stored = await fs.readFile(path.join(folder, fileName));
    check(createHash('sha256').update(stored).digest('hex') === file['@_Sha256'], `${fileName} does not match its Sha256`);
    const plain = zstd.decompress(openSealedFile(stored, dataKey, name, roleName, fileName));
    if (!keys) {
      roles.set(roleName, plain);
      continue;
    }
    check(fileName.endsWith('.azscat'), `${fileName} is not a catalog`);
    const stream = await streamOf(share, keys, parseCatalog(plain).entries);
    check(stream.length === Number(role['@_Size']), `${roleName}: the stream is not the Size recorded`);
    roles.set(roleName, stream);
  }
  return { formatVersion, roles };
}
