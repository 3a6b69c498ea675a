import { promises as fs } from 'node:fs';
import path from 'node:path';

/** Every file under AzsRepository/packs of a local share, relative to it, sorted. */
export async function packFiles(share: string): Promise<string[]> {
  const root = path.join(share, 'AzsRepository', 'packs');
  const found = await fs.readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return found
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}
