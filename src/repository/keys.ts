import { createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { AzsError } from '../errors.js';
import { GEAR_SEED_BYTES } from './gear.js';

/**
 * The keys of a deduplicating repository. One random 32-byte master key is what gets wrapped for
 * each recipient (like a backup's data key), in the repository's config file on the share:
 *
 *   hostSecret = HKDF(master, "AzsBackup repository host secret v2")
 *   private    = HKDF(master, "AzsBackup repository private key v2")   an X25519 private key
 *   public     = X25519(private, 9)                                       kept by the backup host
 *
 * The backup host keeps only the host secret and the public key (sealed in its configuration).
 * From the host secret come the keys that dedup and index but reveal no data:
 *
 *   chunkId  "AzsBackup repository chunk id v2"      HMAC key of chunk ids
 *   gearSeed "AzsBackup repository chunker seed v2"  seed of the chunker's gear table (gear.ts)
 *   toc      "AzsBackup repository pack toc key v2"  AES-256-GCM key of a pack's table of contents
 *   index    "AzsBackup repository index key v2"     AES-256-GCM key of index files
 *   wraps    "AzsBackup repository wraps mac v2"     HMAC key of config.xml's wraps (repository-config.ts)
 *
 * Chunk data is sealed under a key per pack that only the private key recovers: each pack carries
 * an ephemeral X25519 public key E, and its blob key is HKDF(X25519(e, public) or X25519(private, E),
 * info = "AzsBackup pack key v2" || E || public). So, as with backups made for a certificate
 * today, the machine that writes backups cannot read them back: a stolen host configuration
 * yields no data. Anyone holding the public key can make packs, so packs prove nothing by
 * themselves: a chunk is accepted only when it hashes, under the chunk-id key, to the id an
 * authenticated catalog lists.
 */
export const REPOSITORY_KEY_BYTES = 32;
export const CHUNK_ID_BYTES = 32;
export const PUBLIC_KEY_BYTES = 32;

export interface RepositoryKeys {
  readonly chunkId: Buffer;
  readonly gearSeed: Buffer;
  readonly toc: Buffer;
  readonly index: Buffer;
  /** HMAC key of the wraps in config.xml: who holds it may say for whom the master key is wrapped. */
  readonly wraps: Buffer;
  /** The repository's X25519 public key, 32 raw bytes: what new packs are sealed for. */
  readonly publicKey: Buffer;
  /** Present only where the master key was unwrapped (restore, keyed checks): opens chunk data. */
  readonly privateKey?: KeyObject;
}

/** What the backup host keeps of a repository: enough to add to it and to index it, not to read it. */
export interface RepositoryHostKeys {
  hostSecret: Buffer;
  publicKey: Buffer;
}

const LABELS = {
  hostSecret: 'AzsBackup repository host secret v2',
  privateKey: 'AzsBackup repository private key v2',
  chunkId: 'AzsBackup repository chunk id v2',
  gearSeed: 'AzsBackup repository chunker seed v2',
  toc: 'AzsBackup repository pack toc key v2',
  index: 'AzsBackup repository index key v2',
  wraps: 'AzsBackup repository wraps mac v2',
  pack: 'AzsBackup pack key v2',
} as const;

const hkdf = (ikm: Buffer, label: string, bytes = 32): Buffer =>
  Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), Buffer.from(label, 'ascii'), bytes));

function invalidKey(what: string): AzsError {
  return new AzsError(`A repository ${what} must be ${REPOSITORY_KEY_BYTES} bytes.`, {
    errorId: 'InvalidRepositoryKey',
    category: 'InvalidArgument',
    recommendedAction: 'Unwrap the repository key with the configured encryption key or certificate before opening the repository.',
  });
}

// Raw X25519 keys as Node takes them: a private key in PKCS#8 (a fixed 16-byte prefix, RFC 8410),
// a public key as a JWK.
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function x25519Private(raw: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

function x25519Public(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' });
}

function rawPublicOf(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
}

/** Every key of the repository, from its master key (unwrapped with a recipient's material). */
export function deriveRepositoryKeys(master: Buffer): Required<RepositoryKeys> {
  if (!Buffer.isBuffer(master) || master.length !== REPOSITORY_KEY_BYTES) throw invalidKey('master key');
  const privateKey = x25519Private(hkdf(master, LABELS.privateKey));
  const publicKey = rawPublicOf(createPublicKey(privateKey));
  return { ...hostKeysFrom({ hostSecret: hkdf(master, LABELS.hostSecret), publicKey }), privateKey };
}

/** What the backup host keeps, from the master key. */
export function hostKeysOf(master: Buffer): RepositoryHostKeys {
  const keys = deriveRepositoryKeys(master);
  return { hostSecret: hkdf(master, LABELS.hostSecret), publicKey: keys.publicKey };
}

/** The keys that add to and index a repository, without the one that reads its data. */
export function hostKeysFrom(host: RepositoryHostKeys): RepositoryKeys {
  if (host.hostSecret.length !== REPOSITORY_KEY_BYTES) throw invalidKey('host secret');
  if (host.publicKey.length !== PUBLIC_KEY_BYTES) throw invalidKey('public key');
  return {
    chunkId: hkdf(host.hostSecret, LABELS.chunkId),
    gearSeed: hkdf(host.hostSecret, LABELS.gearSeed, GEAR_SEED_BYTES),
    toc: hkdf(host.hostSecret, LABELS.toc),
    index: hkdf(host.hostSecret, LABELS.index),
    wraps: hkdf(host.hostSecret, LABELS.wraps),
    publicKey: Buffer.from(host.publicKey),
  };
}

/** A new pack's blob key and the ephemeral public key its header carries. */
export function newPackKey(keys: Pick<RepositoryKeys, 'publicKey'>): { ephemeral: Buffer; blobKey: Buffer } {
  const pair = generateKeyPairSync('x25519');
  const ephemeral = rawPublicOf(pair.publicKey);
  const shared = diffieHellman({ privateKey: pair.privateKey, publicKey: x25519Public(keys.publicKey) });
  return { ephemeral, blobKey: packKeyFrom(shared, ephemeral, keys.publicKey) };
}

/** The blob key of a pack whose header carries `ephemeral`; needs the repository's private key. */
export function packKeyOf(keys: RepositoryKeys, ephemeral: Buffer): Buffer {
  if (!keys.privateKey) throw new TypeError('opening chunk data needs the repository private key');
  const shared = diffieHellman({ privateKey: keys.privateKey, publicKey: x25519Public(ephemeral) });
  return packKeyFrom(shared, ephemeral, keys.publicKey);
}

function packKeyFrom(shared: Buffer, ephemeral: Buffer, publicKey: Buffer): Buffer {
  return Buffer.from(
    hkdfSync('sha256', shared, Buffer.alloc(0), Buffer.concat([Buffer.from(LABELS.pack, 'ascii'), ephemeral, publicKey]), 32),
  );
}

/** A chunk's identity: HMAC-SHA256(K_chunkId, plaintext). The share never sees a plain hash of data. */
export function chunkIdOf(keys: Pick<RepositoryKeys, 'chunkId'>, plaintext: Buffer | readonly Buffer[]): Buffer {
  const mac = createHmac('sha256', keys.chunkId);
  if (Buffer.isBuffer(plaintext)) mac.update(plaintext);
  else for (const piece of plaintext) mac.update(piece);
  return mac.digest();
}
