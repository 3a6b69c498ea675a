/**
 * Finds the manifests and the one cmdlet file asked for. From dist/host/main.js: dist/manifests.json
 * and dist/cmdlets/<Verb-Noun>.js. From the sources (tests): manifests/*.xml and cmdlets/<Verb-Noun>.ts.
 * AZSBACKUP_MANIFESTS_DIR / AZSBACKUP_CMDLETS_DIR (or the main() options) point elsewhere.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AzsError } from '../errors.js';
import { readCompiledManifests } from '../manifest/compiled.js';
import type { CmdletManifest, TypeRegistry } from '../manifest/model.js';
import type { Cmdlet } from './cmdlet.js';

export interface Catalog {
  /** Case-insensitive lookup. */
  find(name: string): CmdletManifest | undefined;
  all(): CmdletManifest[];
  types: TypeRegistry;
}

export interface Locations {
  /** A folder of manifest XML files (parsed and validated on every run: for tests and development). */
  manifestsDir?: string | undefined;
  /** The compiled manifests JSON (default: manifests.json next to the host's folder). */
  compiledManifests?: string | undefined;
  cmdletsDir?: string | undefined;
}

async function fromXml(dir: string): Promise<Catalog> {
  // Only tests and source checkouts get here; the built host never loads the XML parser.
  const { loadManifestSet } = await import('../manifest/load.js');
  const set = loadManifestSet(dir);
  const byName = new Map(set.cmdlets.map((c) => [c.name.toLowerCase(), c]));
  return { find: (n) => byName.get(n.toLowerCase()), all: () => set.cmdlets, types: set.types };
}

export async function loadCatalog(loc: Locations): Promise<Catalog> {
  if (loc.manifestsDir) return fromXml(loc.manifestsDir);
  const compiled = loc.compiledManifests ?? fileURLToPath(new URL('../manifests.json', import.meta.url));
  if (!loc.compiledManifests && !existsSync(compiled)) return fromXml(fileURLToPath(new URL('../../manifests', import.meta.url)));
  const c = readCompiledManifests(compiled);
  const types: TypeRegistry = new Map(Object.entries(c.types));
  return { find: (n) => c.cmdlets[n.toLowerCase()], all: () => Object.values(c.cmdlets), types };
}

function candidates(name: string, loc: Locations): string[] {
  if (loc.cmdletsDir) return ['.js', '.mjs', '.ts'].map((ext) => join(loc.cmdletsDir!, `${name}${ext}`));
  return [
    fileURLToPath(new URL(`../cmdlets/${name}.js`, import.meta.url)),
    fileURLToPath(new URL(`../../cmdlets/${name}.ts`, import.meta.url)),
  ];
}

/** Imports only the file of the cmdlet asked for. */
export async function loadCmdlet(name: string, loc: Locations): Promise<Cmdlet> {
  const files = candidates(name, loc);
  const file = files.find((f) => existsSync(f));
  if (!file) {
    throw new AzsError(`${name} has a manifest but no implementation (looked for ${files.join(', ')}).`, {
      errorId: 'CmdletNotImplemented',
      category: 'NotImplemented',
      exitCode: 1,
      targetObject: name,
      recommendedAction: 'Rebuild with `npm run build`; if it persists, the installation is incomplete.',
    });
  }
  const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  if (typeof mod.default !== 'function') {
    throw new AzsError(`${file} does not default-export a cmdlet function.`, {
      errorId: 'InvalidCmdlet',
      category: 'NotImplemented',
      exitCode: 1,
      targetObject: name,
    });
  }
  return mod.default as Cmdlet;
}
