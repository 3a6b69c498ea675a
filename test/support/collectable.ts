import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Drill } from './cli.js';
import { redate } from './redate.js';

const DAY = 86_400_000;

/** Every file below `dir`; [] when it does not exist. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) out.push(path.join(entry.parentPath, entry.name));
  }
  return out;
}

/**
 * A key-mode drill's share as a prune finds it with a pack to collect: a command role `Data` (the
 * files of `<root>/data`, restored into `<root>/restored.bin`) backed up twice, the first backup 30
 * days old and alone in needing its pack (2 MiB of random bytes, returned), every repository file
 * past the grace.
 */
export async function shareWithCollectablePack(d: Drill): Promise<{ data: string; first: Buffer }> {
  const data = path.join(d.root, 'data');
  await fs.mkdir(data);
  await d.registerCommand('Data', ['sh', '-c', `cat '${data}'/*`], ['sh', '-c', `cat > '${path.join(d.root, 'restored.bin')}'`]);
  const first = randomBytes(2 * 1024 * 1024);
  await fs.writeFile(path.join(data, 'a.bin'), first);
  const old = await d.backup();
  await fs.rm(path.join(data, 'a.bin'));
  await fs.writeFile(path.join(data, 'b.bin'), randomBytes(1024 * 1024));
  await d.backup();
  await redate(d, old.Name, new Date(Date.now() - 30 * DAY));
  const then = new Date(Date.now() - 2 * DAY);
  for (const f of await filesUnder(path.join(d.share, 'AzsRepository'))) await fs.utimes(f, then, then);
  return { data, first };
}
