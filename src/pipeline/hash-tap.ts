import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export interface HashTapDigest {
  /** Lower-case hex SHA-256 of every byte that passed through. */
  sha256: string;
  bytes: number;
}

export type HashTap = Transform & { digest(): HashTapDigest };

class HashTapStream extends Transform {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private result: HashTapDigest | undefined;

  override _transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.hash.update(data);
    this.bytes += data.length;
    done(null, data);
  }

  /** Valid once the stream has finished; the digest covers exactly what was passed on. */
  digest(): HashTapDigest {
    if (!this.result) {
      if (!this.writableFinished) throw new Error('HashTap.digest() called before the stream finished');
      this.result = { sha256: this.hash.digest('hex'), bytes: this.bytes };
    }
    return this.result;
  }
}

/** A pass-through that records the SHA-256 and size of what flows through it (for BackupInfo.xml). */
export function createHashTap(): HashTap {
  return new HashTapStream();
}
