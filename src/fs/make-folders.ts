import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * Makes `dir` and the folders above it that are missing, one at a time, so a failure says why:
 * Node's recursive mkdir reports a read-only file system (EROFS) as ENOENT, which told an operator
 * restoring onto one that something did not exist.
 */
export async function makeFolders(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let p = path.resolve(dir); !(await present(p)); p = path.dirname(p)) missing.unshift(p);
  for (const p of missing) {
    await fs.mkdir(p).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}

async function present(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}
