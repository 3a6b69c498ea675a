import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { importGraph } from '../support/import-graph.js';

/**
 * The house rule of docs/ARCHITECTURE.md ("Never"): the library below the cmdlets (engine,
 * providers, targets, pipeline, catalog, crypto, repository) could sit behind a REST API tomorrow,
 * so it never imports the host, the output formatters, the cmdlets' views (src/session) or the cmdlets.
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const library = ['engine', 'providers', 'targets', 'pipeline', 'catalog', 'crypto', 'repository'].map((room) => `src/${room}/`);
const above = ['src/host/', 'src/output/', 'src/session/', 'cmdlets/'];

describe('layers', () => {
  it('nothing below the cmdlets imports the host, the output, the session views or a cmdlet', () => {
    const graph = importGraph(root, ['src', 'cmdlets']);
    const upward = [...graph.entries()]
      .filter(([file]) => library.some((room) => file.startsWith(room)))
      .flatMap(([file, targets]) => targets.filter((t) => above.some((a) => t.startsWith(a))).map((t) => `${file} -> ${t}`));
    expect(upward).toEqual([]);
    expect([...graph.keys()].filter((f) => library.some((room) => f.startsWith(room))).length).toBeGreaterThan(50);
  });
});
