/**
 * No function in src/ is longer than 80 lines (issue 21: short functions with names), measured
 * with the TypeScript parser by scripts/function-lengths.ts. A long function is split into named
 * steps a reader can follow top-down, not allowed here.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { longFunctions, longFunctionsInFile } from '../../scripts/function-lengths.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const limit = 80;
describe('function length', () => {
  it(`no function in src/ is longer than ${limit} lines`, () => {
    const over = longFunctions(repo, ['src'], limit).map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`);
    expect(over).toEqual([]);
  });

  it('measures every kind of function, from its first line to its last, and names it', () => {
    const body = (n: number) => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`).join('\n');
    const text = [
      `export function declared() {\n${body(3)}\n}`,
      `const arrow = () => {\n${body(3)}\n};`,
      `class C {\n  method() {\n${body(2)}\n  }\n}`,
      `const short = () => 1;`,
    ].join('\n');
    // declared: lines 1-5, arrow: 6-10, method: 12-15 (inside class C, 11-16), short: 17.
    expect(longFunctionsInFile('x.ts', text, 3)).toEqual([
      { file: 'x.ts', name: 'declared', line: 1, lines: 5 },
      { file: 'x.ts', name: 'arrow', line: 6, lines: 5 },
      { file: 'x.ts', name: 'method', line: 12, lines: 4 },
    ]);
    expect(longFunctionsInFile('x.ts', text, 4).map((f) => f.name)).toEqual(['declared', 'arrow']);
  });
});
