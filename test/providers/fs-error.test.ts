import { describe, expect, it } from 'vitest';
import { providerFsError } from '../../src/providers/fs-error.js';

/**
 * A destination out of room is DestinationFull (exit 14) whatever the provider, so a CI script or
 * an alert can tell "make room" from a broken role. A disk quota is the same for the operator: the
 * direct writer of large restored files (direct-files.ts) sees the kernel's EDQUOT, where GNU tar's
 * message "Disk quota exceeded" was already taken as a full disk (directory.ts, extractFailure).
 */
const opts = { message: 'Writing a restored file failed', errorId: 'DirectoryImportFailed', target: '/srv/pki', recommendedAction: 'x' };
const failure = (code: string) => Object.assign(new Error(`${code}: the kernel's words, '/srv/pki/big.bin'`), { code });

describe("a provider's file-system failure", () => {
  for (const code of ['ENOSPC', 'EDQUOT']) {
    it(`${code} is DestinationFull, exit 14, with advice about room`, () => {
      const e = providerFsError(failure(code), opts);
      expect(e).toMatchObject({ errorId: 'DestinationFull', exitCode: 14, category: 'QuotaExceeded' });
      expect(e.recommendedAction).toMatch(/Free space/);
      expect(e.message).toContain('/srv/pki/big.bin');
    });
  }

  it("anything else keeps the provider's own error and advice", () => {
    expect(providerFsError(failure('EIO'), opts)).toMatchObject({ errorId: 'DirectoryImportFailed', exitCode: 1, recommendedAction: 'x' });
  });
});
