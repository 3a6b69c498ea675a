import { createHmac, hkdfSync } from 'node:crypto';
import { AzsError } from '../errors.js';
import { GEAR_SEED_BYTES } from './gear.js';

/**
 * The keys of a deduplicating repository, all derived from one random 32-byte repository key
 * (which, like a backup's data key today, is what gets wrapped for each recipient):
 *
 *   K_x = HKDF-SHA256(ikm = repositoryKey, salt = empty, info = label_x, L = 32)
 *
 *   chunkId  "AzsBackup repository chunk id v1"      HMAC key of chunk ids
 *   gearSeed "AzsBackup repository chunker seed v1"  seed of the chunker's gear table (gear.ts)
 *   blob     "AzsBackup repository blob key v1"      AES-256-GCM key of chunk blobs in packs
 *   toc      "AzsBackup repository pack toc key v1"  AES-256-GCM key of a pack's table of contents
 *   index    "AzsBackup repository index key v1"     AES-256-GCM key of index files
 *
 * One key per purpose, so no ciphertext or MAC made for one purpose is accepted for another.
 */
export const REPOSITORY_KEY_BYTES = 32;
export const CHUNK_ID_BYTES = 32;

export interface RepositoryKeys {
  readonly chunkId: Buffer;
  readonly gearSeed: Buffer;
  readonly blob: Buffer;
  readonly toc: Buffer;
  readonly index: Buffer;
}

const LABELS = {
  chunkId: 'AzsBackup repository chunk id v1',
  gearSeed: 'AzsBackup repository chunker seed v1',
  blob: 'AzsBackup repository blob key v1',
  toc: 'AzsBackup repository pack toc key v1',
  index: 'AzsBackup repository index key v1',
} as const;

export function deriveRepositoryKeys(repositoryKey: Buffer): RepositoryKeys {
  if (!Buffer.isBuffer(repositoryKey) || repositoryKey.length !== REPOSITORY_KEY_BYTES) {
    throw new AzsError(`A repository key must be ${REPOSITORY_KEY_BYTES} bytes.`, {
      errorId: 'InvalidRepositoryKey',
      category: 'InvalidArgument',
      recommendedAction: 'Unwrap the repository key with the configured encryption key or certificate before opening the repository.',
    });
  }
  const derive = (label: string, bytes = 32): Buffer =>
    Buffer.from(hkdfSync('sha256', repositoryKey, Buffer.alloc(0), Buffer.from(label, 'ascii'), bytes));
  return {
    chunkId: derive(LABELS.chunkId),
    gearSeed: derive(LABELS.gearSeed, GEAR_SEED_BYTES),
    blob: derive(LABELS.blob),
    toc: derive(LABELS.toc),
    index: derive(LABELS.index),
  };
}

/** A chunk's identity: HMAC-SHA256(K_chunkId, plaintext). The share never sees a plain hash of data. */
export function chunkIdOf(keys: RepositoryKeys, plaintext: Buffer | readonly Buffer[]): Buffer {
  const mac = createHmac('sha256', keys.chunkId);
  if (Buffer.isBuffer(plaintext)) mac.update(plaintext);
  else for (const piece of plaintext) mac.update(piece);
  return mac.digest();
}
