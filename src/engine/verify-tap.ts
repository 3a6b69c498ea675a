import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { AzsError, ExitCode } from '../errors.js';
import type { StoredFile } from '../catalog/backup-info.js';

/**
 * A pass-through that checks a stored file against the size and SHA-256 recorded in BackupInfo.xml.
 * It fails before the stream ends, so a consumer that commits only on a clean end never commits a
 * file that does not match.
 */
export function createVerifyTap(expected: StoredFile, backupName: string): Transform {
  const hash = createHash('sha256');
  let size = 0;
  const fail = (why: string) =>
    new AzsError(`Stored file ${expected.name} of backup ${backupName} ${why}.`, {
      errorId: 'StoredFileMismatch',
      category: 'InvalidData',
      exitCode: ExitCode.Integrity,
      targetObject: expected.name,
      recommendedAction: 'The file was changed or damaged on the share: restore from another backup.',
    });
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > expected.size) return done(fail(`is longer than the ${expected.size} bytes recorded`));
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      if (size !== expected.size) return done(fail(`has ${size} bytes, not the ${expected.size} recorded`));
      if (hash.digest('hex') !== expected.sha256) return done(fail('does not match its recorded SHA-256'));
      done();
    },
  });
}
