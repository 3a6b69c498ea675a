import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** A process that has a file open, as /proc shows it. */
export interface FileUser {
  pid: number;
  /** Its command name (/proc/<pid>/comm). */
  command: string;
}

/**
 * The other processes that have `file`, or anything below the folder `file`, open now, from
 * /proc/<pid>/fd (Linux; elsewhere, or where /proc is not mounted, none). Processes this one may
 * not look into (another user's, without root) are not seen. A program that keeps a file open
 * goes on reading and writing the file it opened, also once a restore has put another in its
 * place: the caller says so, so that the operator restarts it.
 */
export function processesUsing(file: string, below: boolean): FileUser[] {
  // Synchronous: /proc answers from memory, and one call through libuv's threads per descriptor
  // cost ~80 us against ~14 us (a busy server has tens of thousands of descriptors open).
  const users: FileUser[] = [];
  for (const name of listing('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    for (const fd of listing(`/proc/${name}/fd`)) {
      const target = linkOf(`/proc/${name}/fd/${fd}`);
      if (target === file || (below && target.startsWith(`${file}/`))) {
        users.push({ pid: Number(name), command: commandOf(name) });
        break;
      }
    }
  }
  return users;
}

function listing(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}

function linkOf(link: string): string {
  try {
    return readlinkSync(link);
  } catch {
    return '';
  }
}

function commandOf(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/** The warning for a restore whose destination `where` was in use by `users` as it went into place. */
export function stillInUse(role: string, where: string, users: FileUser[]): string {
  const shown = users.slice(0, 5).map((u) => `${u.pid} (${u.command})`);
  const more = users.length > shown.length ? ` and ${users.length - shown.length} more` : '';
  const one = users.length === 1;
  return (
    `Role ${role}: '${where}' was open in process${one ? '' : 'es'} ${shown.join(', ')}${more} when the restored data went into place. ` +
    `A running program keeps using the files it had open, the old ones, until it restarts: restart ${one ? 'it' : 'them'} now, ` +
    'or what they read is not what was restored and what they write is lost.'
  );
}
