import { hash } from 'node:crypto';
import { AzsError } from '../errors.js';

/**
 * The gear table of the content-defined chunker: 256 pseudo-random 32-bit words, one per byte value.
 *
 *   gear[i] = uint32BE(SHA-256("AzsBackup CDC gear v1" || 0x00 || seed || uint8(i))[0..3])
 *
 * `seed` is 32 bytes. A repository derives it from its key (keys.ts, "chunker seed"), so where a
 * stream is cut depends on that key: someone who can read the share and guesses a file's contents
 * cannot predict the chunk boundaries, and so cannot match sizes seen on the share against guesses
 * (restic keys its chunker polynomial and borg its buzhash seed for the same reason). Anyone who
 * holds the key reproduces the table from this one line; restore never needs it (catalogs list
 * chunk ids), only a writer that wants to dedup against what is stored.
 */
export const GEAR_SEED_BYTES = 32;
const GEAR_LABEL = Buffer.from('AzsBackup CDC gear v1\0', 'ascii');

export function gearTable(seed: Buffer): Uint32Array {
  if (!Buffer.isBuffer(seed) || seed.length !== GEAR_SEED_BYTES) {
    throw new AzsError(`A chunker seed must be ${GEAR_SEED_BYTES} bytes.`, {
      errorId: 'InvalidChunkerSeed',
      category: 'InvalidArgument',
      recommendedAction: 'Derive the seed from the repository key (deriveRepositoryKeys).',
    });
  }
  const table = new Uint32Array(256);
  // One message buffer, its last byte set to each i in turn: a Hash object and three updates per
  // word took 8 ms of every backup's start.
  const message = Buffer.concat([GEAR_LABEL, seed, Buffer.alloc(1)]);
  for (let i = 0; i < 256; i++) {
    message[message.length - 1] = i;
    table[i] = hash('sha256', message, 'buffer').readUInt32BE(0);
  }
  return table;
}
