import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * Putting restored data into place with renames on one file system, so at every instant the
 * destination is either wholly the old data or wholly the new.
 */

const OLD_TAG = 'azs-old';

/**
 * Replaces the folder `dest` by `staging` (a sibling). The old folder is renamed aside first and
 * put back if the second rename fails; it is removed only once the new one is in place.
 */
export async function swapDirectoryInto(staging: string, dest: string): Promise<void> {
  const exists = await fs.lstat(dest).then(() => true, () => false);
  let aside: string | undefined;
  if (exists) {
    // mkdtemp reserves a unique name; renaming a folder onto an empty folder replaces it.
    aside = await fs.mkdtemp(path.join(path.dirname(dest), `.${path.basename(dest)}.${OLD_TAG}-`));
    await fs.rename(dest, aside);
  }
  try {
    await fs.rename(staging, dest);
  } catch (e) {
    if (aside) await fs.rename(aside, dest);
    throw e;
  }
  // The restore has succeeded; a leftover we cannot delete is removed by the next restore.
  if (aside) await fs.rm(aside, { recursive: true, force: true }).catch(() => undefined);
}

/**
 * Removes staging and aside folders or files a crashed restore of `base` left in `parent`. Only
 * names we create (`.<base>.<tag>-XXXXXX`) are touched.
 */
export async function removeStale(parent: string, base: string, stagingTag: string): Promise<void> {
  const names = await fs.readdir(parent).catch(() => [] as string[]);
  const prefixes = [`.${base}.${stagingTag}-`, `.${base}.${OLD_TAG}-`];
  for (const n of names) {
    if (prefixes.some((p) => n.startsWith(p) && /^[A-Za-z0-9]{6}$/.test(n.slice(p.length)))) {
      await fs.rm(path.join(parent, n), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}
