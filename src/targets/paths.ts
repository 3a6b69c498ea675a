import { randomBytes } from 'node:crypto';
import { AzsError } from '../errors.js';

/**
 * Target paths are relative, '/'-separated, and never escape the root. Callers build them from
 * names they control, so a bad one is a bug in the caller, not bad operator input.
 */
export function splitTargetPath(p: string, opts: { allowRoot?: boolean } = {}): string[] {
  const bad = (why: string) =>
    new AzsError(`Internal error: the target path '${p}' ${why}.`, {
      errorId: 'InvalidTargetPath',
      category: 'InvalidOperation',
      targetObject: p,
      recommendedAction: 'This is a defect in AzsBackup; report it with the command that failed.',
    });
  if (p === '') {
    if (opts.allowRoot) return [];
    throw bad('is empty');
  }
  if (p.startsWith('/') || p.startsWith('\\')) throw bad('is absolute');
  if (p.includes('\\')) throw bad("uses '\\'; target paths use '/'");
  if (p.includes('\0')) throw bad('contains a NUL character');
  const segments = p.split('/');
  for (const s of segments) {
    if (s === '') throw bad('has an empty segment');
    if (s === '.' || s === '..') throw bad(`has a '${s}' segment`);
  }
  return segments;
}

/**
 * Whether splitTargetPath takes `p`: for names listed from storage, where another writer or tool
 * may have put one no target path can hold (a blob name ending in '/' or with an empty segment, a
 * '\\' in a file name). Listed, such a name would be refused when handed back, stopping whatever
 * walks the folder; it is left out of listings instead.
 */
export function isTargetPath(p: string): boolean {
  return p !== '' && !p.includes('\\') && !p.includes('\0') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/**
 * Files being written live under a temporary name beside their final one, so an interrupted write
 * never shows under the final name. Anything carrying this marker is a leftover and safe to delete.
 */
export const PARTIAL_MARKER = '.azs-partial-';

export function partialNameFor(finalName: string): string {
  return `${PARTIAL_MARKER}${randomBytes(6).toString('hex')}-${finalName}`;
}

export function isPartialName(name: string): boolean {
  return name.startsWith(PARTIAL_MARKER);
}
