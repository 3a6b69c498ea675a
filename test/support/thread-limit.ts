import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A limit on processes, as a container's or service's pids.max (or ulimit -u) sets one: every
 * thread counts. withNoMoreThreads runs a function with this process in a new pids cgroup that
 * allows it no thread (and no child) more than it has now, then puts it back. Needs root and a
 * pids controller (cgroup v1's, or v2's unified tree); undefined where that cannot be had.
 */

function pidsRoot(): { root: string; own: string } | undefined {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  const v1 = lines.find((l) => /^\d+:pids:/.test(l));
  if (v1 && existsSync('/sys/fs/cgroup/pids/cgroup.procs')) return { root: '/sys/fs/cgroup/pids', own: v1.split(':')[2]! };
  const v2 = lines.find((l) => l.startsWith('0::'));
  const controllers = '/sys/fs/cgroup/cgroup.controllers';
  if (v2 && existsSync(controllers) && readFileSync(controllers, 'utf8').includes('pids'))
    return { root: '/sys/fs/cgroup', own: v2.slice(3) };
  return undefined;
}

/** The cgroup made, with this process in it and no more pids allowed; undefined where none may be made. */
function enter(): { cg: string; leave(): void } | undefined {
  let where: ReturnType<typeof pidsRoot>;
  try {
    where = pidsRoot();
  } catch {
    return undefined;
  }
  if (!where) return undefined;
  const home = where;
  const cg = path.join(home.root, `azs-test-threads-${process.pid}`);
  try {
    mkdirSync(cg);
  } catch {
    return undefined; // not root, or the hierarchy is not ours to change
  }
  const leave = () => {
    writeFileSync(path.join(cg, 'pids.max'), 'max');
    writeFileSync(path.join(home.root, home.own, 'cgroup.procs'), String(process.pid));
    rmdirSync(cg);
  };
  try {
    writeFileSync(path.join(cg, 'cgroup.procs'), String(process.pid));
    writeFileSync(path.join(cg, 'pids.max'), readFileSync(path.join(cg, 'pids.current'), 'utf8').trim());
  } catch {
    leave();
    return undefined;
  }
  return { cg, leave };
}

export function withNoMoreThreads<T>(fn: () => T): T | undefined {
  const limit = enter();
  if (!limit) return undefined;
  try {
    return fn();
  } finally {
    limit.leave();
  }
}

/** As withNoMoreThreads, for work that awaits (on threads that already run: libuv's pool is started before). */
export async function withNoMoreThreadsAsync<T>(fn: () => Promise<T>): Promise<T | undefined> {
  // libuv starts its thread pool at its first use: a pool it could not start would abort the process.
  await import('node:fs/promises').then((fsp) => fsp.stat(import.meta.filename));
  const limit = enter();
  if (!limit) return undefined;
  try {
    return await fn();
  } finally {
    limit.leave();
  }
}
