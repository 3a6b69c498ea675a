import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isAzsError } from '../../src/errors.js';
import { openTarget } from '../../src/targets/index.js';
import { LISTING_WITH_FREE_SPACE, PWD_LINE_WHEN_ASKED, useStandInSmbclient } from '../support/stand-in-smbclient.js';

/**
 * The SMB target against a stand-in smbclient (first on the PATH the target hands its runs) that
 * lists a share with free space, and in a `put` reads a little of its input and exits, as
 * smbclient does when the server goes away mid-transfer. Node then reports the closed input as
 * EPIPE or, when smbclient is gone between two writes, only as "Premature close"; either way the
 * write must fail as the share's connectivity (once: "Reading the folder ... failed: Premature
 * close"), never as the caller's data.
 */

useStandInSmbclient(() => [
  PWD_LINE_WHEN_ASKED,
  'case "$*" in',
  // Reads 64 KiB of the put's input, then goes away without a word, its input left unread.
  '  *"put -"*) head -c 65536 > /dev/null; exit 1 ;;',
  `  *) ${LISTING_WITH_FREE_SPACE}; exit 0 ;;`,
  'esac',
]);

describe('SMB target, smbclient gone mid-put', () => {
  it.each([
    ['pieces far apart (smbclient gone between two writes)', 20, 64 * 1024, 30],
    ['pieces back to back (a write meets the closed pipe)', 64, 1024 * 1024, 0],
  ])('fails as the share: %s', async (_what, count, size, pauseMs) => {
    const target = openTarget('\\\\127.0.0.1\\backups', { userName: 'backup', password: 'not-secret' });
    const data = Readable.from(
      (async function* () {
        for (let i = 0; i < count; i++) {
          yield Buffer.alloc(size, i);
          if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
        }
      })(),
    );
    const err = await target.write('AzsRepository/packs/.pending-test', data, { atomic: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isAzsError(err) ? err.alertType : err).toBe('ShareConnectivity');
  });
});
