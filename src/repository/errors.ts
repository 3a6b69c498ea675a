import { AzsError, ExitCode } from '../errors.js';

const CHECK_ADVICE =
  'Run Test-InfrastructureBackup on the location to find every backup that needs it; restore from a backup that does not.';

/** A pack whose bytes are not what its name (their SHA-256) or its own structure says. */
export function packDamaged(pack: string, detail: string, cause?: unknown): AzsError {
  return new AzsError(`The pack ${pack} is damaged: ${detail}.`, {
    errorId: 'PackDamaged',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    targetObject: pack,
    recommendedAction: `The pack file on the share was changed or cut short. ${CHECK_ADVICE}`,
    cause,
  });
}

/** A chunk that does not authenticate as the chunk its index or table of contents names. */
export function chunkNotAuthentic(chunkId: string, pack: string, detail: string, cause?: unknown): AzsError {
  return new AzsError(`The chunk ${chunkId} in pack ${pack} is not authentic: ${detail}.`, {
    errorId: 'ChunkNotAuthentic',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    targetObject: { ChunkId: chunkId, Pack: pack },
    recommendedAction: `The chunk was changed, or another chunk was put in its place. ${CHECK_ADVICE}`,
    cause,
  });
}

/** An index file that does not decrypt, or does not parse once decrypted. */
export function indexDamaged(file: string, detail: string, cause?: unknown): AzsError {
  return new AzsError(`The index file ${file} is not usable: ${detail}.`, {
    errorId: 'IndexDamaged',
    category: 'InvalidData',
    exitCode: ExitCode.Integrity,
    targetObject: file,
    recommendedAction:
      'Indexes can be rebuilt from the packs alone: delete the damaged index file and rebuild the index (rebuildIndexFromPacks).',
    cause,
  });
}
