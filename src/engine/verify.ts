import { pipeline, Writable } from 'node:stream';
import { isAzsError } from '../errors.js';
import type { DecryptWith } from '../crypto/recipient.js';
import { CHUNK_HEADER_BYTES, CHUNK_TAG_BYTES } from '../pipeline/chunk-cipher.js';
import { openRoleStream } from '../pipeline/role-stream.js';
import type { ProgressReporter } from '../progress.js';
import { canRecycle } from '../memory/recycling-readable.js';
import type { Target } from '../targets/target.js';
import { openBackup, type Authenticity } from './open-backup.js';
import { createVerifyTap } from './verify-tap.js';

/**
 * Checks a backup without restoring it. Keyless: BackupInfo.xml's digest and every stored file's
 * size and SHA-256. With the decryption material: also BackupInfo.xml's authentication code and
 * every chunk decrypted and authenticated (the plaintext is discarded).
 */

export interface FileCheckRecord {
  RoleName: string;
  File: string;
  Succeeded: boolean;
  Message: string;
}

export interface BackupTestRecord {
  Name: string;
  Mode: 'Hash' | 'Authenticated';
  IsValid: boolean;
  FilesChecked: number;
  ChunksAuthenticated: number;
  /** NotChecked without material; else how the backup was proven ours (Key, Certificate), or Unauthenticated under -AllowUnauthenticated. */
  Authenticity: Authenticity | 'NotChecked';
  /** What the check can and cannot tell, in words. */
  Checked: string;
  Files: FileCheckRecord[];
}

const CHECKED = {
  Hash:
    'Integrity only: every stored file against the size and SHA-256 that BackupInfo.xml records, and BackupInfo.xml against its digest. ' +
    'This finds damage, not forgery: anyone who can write to the share can make a backup that passes. Give the key or the .pfx to ' +
    'check who made it.',
  Authenticated:
    "Authenticity and integrity: BackupInfo.xml proven to come from a holder of the key or of the certificate's authentication secret, " +
    'and every chunk of every role decrypted and authenticated.',
  Unauthenticated:
    'Integrity under the decryption material, but NOT who made the backup (-AllowUnauthenticated): every chunk decrypted and ' +
    'authenticated under a data key that anyone holding the public certificate could have wrapped.',
};

export interface VerifyOptions {
  /** Checks a certificate-mode backup that carries no authenticator (OpenOptions). */
  allowUnauthenticated?: boolean;
}

/** The end of a check: drops every chunk, handing it back to the stream that made it where it can take it. */
const discard = (recycle?: (chunk: Buffer) => void) =>
  new Writable({
    write(chunk: Buffer, _e, done) {
      recycle?.(chunk);
      done();
    },
  });

export async function verifyBackup(
  target: Target,
  name: string,
  material: DecryptWith | undefined,
  progress: ProgressReporter,
  options: VerifyOptions = {},
): Promise<BackupTestRecord> {
  const files: FileCheckRecord[] = [];
  let chunks = 0;
  let authenticity: BackupTestRecord['Authenticity'] = 'NotChecked';
  const result = (): BackupTestRecord => ({
    Name: name.toLowerCase(),
    Mode: material ? 'Authenticated' : 'Hash',
    IsValid: files.every((f) => f.Succeeded),
    FilesChecked: files.length,
    ChunksAuthenticated: chunks,
    Authenticity: authenticity,
    Checked: !material ? CHECKED.Hash : authenticity === 'Unauthenticated' ? CHECKED.Unauthenticated : CHECKED.Authenticated,
    Files: files,
  });
  let opened: Awaited<ReturnType<typeof openBackup>>;
  try {
    opened = await openBackup(target, name, material, options);
    authenticity = opened.authenticity ?? 'NotChecked';
  } catch (e) {
    // Material meant for another backup says nothing about this backup's health: report it as such.
    if (!isAzsError(e) || e.errorId === 'BackupNotFound' || e.errorId === 'WrongDecryptionMaterial' || e.alertType) throw e;
    files.push({ RoleName: '', File: 'BackupInfo.xml', Succeeded: false, Message: e.message });
    return result();
  }
  const { entry, info, parsed, dataKey } = opened;
  files.push({
    RoleName: '',
    File: 'BackupInfo.xml',
    Succeeded: parsed.digestValid,
    Message: !parsed.digestValid
      ? 'its digest does not match: the file was changed'
      : authenticity === 'Unauthenticated'
        ? "digest and data key's authentication code match; who made it is NOT proven (-AllowUnauthenticated)"
        : dataKey
          ? `digest and authentication code match; made by a holder of the ${authenticity === 'Key' ? 'key' : "certificate's authentication secret"}`
          : 'digest matches (integrity only, not who made it)',
  });
  const stored = info.roles.flatMap((role) => role.files.map((file) => ({ role, file })));
  for (const [i, { role, file }] of stored.entries()) {
    progress.report({
      activity: `Test ${entry.name}`,
      status: `${role.definition.name}: ${file.name}`,
      percentComplete: Math.floor((i / stored.length) * 100),
      id: 0,
    });
    try {
      const source = await target.read(`${entry.folder}/${file.name}`);
      const stages = [source, createVerifyTap(file, entry.name)];
      const opening = dataKey
        ? openRoleStream({ dataKey, backupName: entry.name, roleName: role.definition.name, fileName: file.name })
        : undefined;
      if (opening) {
        // The tap hashes each chunk as it passes, so once the opener has read one through, nothing holds it.
        if (canRecycle(source)) opening.handInputBackTo(source.recycle);
        stages.push(opening);
      }
      await new Promise<void>((resolve, reject) => pipeline([...stages, discard(opening?.recycle)], (e) => (e ? reject(e) : resolve())));
      if (dataKey) chunks += Math.max(1, Math.ceil((file.size - CHUNK_HEADER_BYTES) / (info.chunkSize + CHUNK_TAG_BYTES)));
      files.push({
        RoleName: role.definition.name,
        File: file.name,
        Succeeded: true,
        Message: dataKey ? 'every chunk authenticated' : 'size and SHA-256 match',
      });
    } catch (e) {
      if (isAzsError(e) && e.alertType) throw e;
      files.push({ RoleName: role.definition.name, File: file.name, Succeeded: false, Message: (e as Error).message });
    }
  }
  progress.report({ activity: `Test ${entry.name}`, status: 'Done', percentComplete: 100, id: 0, completed: true });
  return result();
}
