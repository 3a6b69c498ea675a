import { execFile } from 'node:child_process';
import { constants as fsConstants, promises as fs } from 'node:fs';
import { promisify } from 'node:util';
import { directIo } from '../native/direct-io.js';

/**
 * Everything written below `root` on disk, before it goes into place: a restore that reported
 * success and was then lost to a power cut would leave the role empty where its old data was.
 * syncfs(2) through the addon, `sync -f` (coreutils) without it.
 */
export async function flushToDisk(root: string): Promise<void> {
  const io = directIo();
  if (io) {
    const handle = await fs.open(root, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    try {
      await io.syncFileSystem(handle.fd);
    } finally {
      await handle.close();
    }
    return;
  }
  await promisify(execFile)('sync', ['-f', root]);
}
