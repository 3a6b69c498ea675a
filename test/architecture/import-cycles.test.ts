import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { importCycles, importGraph } from '../support/import-graph.js';

/** The house rule "no circular imports" (docs/ARCHITECTURE.md), checked on every `npm test`. */

const root = fileURLToPath(new URL('../..', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'azs-cycles-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('import cycles', () => {
  it('src/ and cmdlets/ import each other one way only', () => {
    const graph = importGraph(root, ['src', 'cmdlets']);
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get('cmdlets/Start-InfrastructureBackup.ts')?.some((f) => f.startsWith('src/engine/'))).toBe(true);
    expect(importCycles(graph).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('finds a cycle made of a type-only import, a dynamic import and a re-export', () => {
    mkdirSync(join(scratch, 'src', 'room'), { recursive: true });
    writeFileSync(join(scratch, 'src', 'a.ts'), "import type { C } from './room/c.js';\nimport { z } from 'zod';\nexport type A = C;\n");
    writeFileSync(
      join(scratch, 'src', 'room', 'c.ts'),
      "export async function c() { return import('./d.js'); }\nexport type C = number;\n",
    );
    writeFileSync(join(scratch, 'src', 'room', 'd.ts'), "export * from '../a.js';\n");
    writeFileSync(join(scratch, 'src', 'leaf.ts'), "import type { A } from './a.js';\nexport const x: A = 1;\n");
    const graph = importGraph(scratch, ['src']);
    expect(graph.get('src/a.ts')).toEqual(['src/room/c.ts']);
    expect(importCycles(graph)).toEqual([['src/a.ts', 'src/room/c.ts', 'src/room/d.ts', 'src/a.ts']]);
  });

  it('names a file that imports itself', () => {
    expect(
      importCycles(
        new Map([
          ['self.ts', ['self.ts']],
          ['other.ts', []],
        ]),
      ),
    ).toEqual([['self.ts', 'self.ts']]);
  });
});
