/**
 * The start-up path: the build validates manifests/*.xml once (load.ts, compileManifests) and writes
 * one JSON file; the host reads that file and nothing else, so no XML is parsed per invocation.
 */
import { readFileSync } from 'node:fs';
import { AzsError } from '../errors.js';
import type { CmdletManifest, TypeDef, TypeRegistry } from './model.js';

/** Bumped when the shape of the compiled file changes, so a stale dist/ is refused, not misread. */
export const compiledFormatVersion = 2;

export interface CompiledManifests {
  formatVersion: number;
  /** Keyed by the lower-case cmdlet name. */
  cmdlets: Record<string, CmdletManifest>;
  types: Record<string, TypeDef>;
}

/** One cmdlet's manifest with the types and the names of every cmdlet (for help and close matches). */
export interface CompiledLookup {
  cmdlet: CmdletManifest | undefined;
  types: TypeRegistry;
  cmdlets: Record<string, CmdletManifest>;
}

export function readCompiledManifests(file: string): CompiledManifests {
  let parsed: CompiledManifests;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as CompiledManifests;
  } catch (e) {
    throw new AzsError(`Cannot read the compiled manifests ${file}: ${(e as Error).message}`, {
      errorId: 'InvalidManifest',
      category: 'InvalidData',
      exitCode: 1,
      targetObject: file,
      recommendedAction: 'Rebuild with `npm run build`, which writes it from manifests/*.xml.',
    });
  }
  if (parsed.formatVersion !== compiledFormatVersion) {
    throw new AzsError(
      `The compiled manifests ${file} have format ${String(parsed.formatVersion)}; this host reads format ${compiledFormatVersion}.`,
      {
        errorId: 'InvalidManifest',
        category: 'InvalidData',
        exitCode: 1,
        targetObject: file,
        recommendedAction: 'Rebuild with `npm run build`.',
      },
    );
  }
  return parsed;
}

/** Looks a cmdlet up by name, case-insensitively, in the compiled file. */
export function loadCompiledManifest(name: string, file: string): CompiledLookup {
  const compiled = readCompiledManifests(file);
  return {
    cmdlet: compiled.cmdlets[name.toLowerCase()],
    types: new Map(Object.entries(compiled.types)),
    cmdlets: compiled.cmdlets,
  };
}
