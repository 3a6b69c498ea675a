// Lists the functions longer than a limit (80 lines by default) in src/ and cmdlets/, measured with
// the TypeScript parser: every function declaration, method, accessor, constructor, function
// expression and arrow function, from its first line to its last. Nested functions are measured on
// their own and also count inside the function that holds them.
//   npx esbuild scripts/function-lengths.ts --platform=node --format=esm --packages=external --outfile=node_modules/.cache/function-lengths.mjs \
//     && node node_modules/.cache/function-lengths.mjs [limit]
// test/architecture/function-length.test.ts holds src/ to 80 lines.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

export interface LongFunction {
  file: string;
  name: string;
  line: number;
  lines: number;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'build' ? [] : sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

function functionName(node: ts.FunctionLikeDeclaration): string {
  if (node.name) return node.name.getText();
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) return parent.name.getText();
  return '(anonymous)';
}

function isMeasured(node: ts.Node): node is ts.FunctionLikeDeclaration {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node) ||
    ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node)
  );
}

/** Every function in one file with more than `limit` lines. */
export function longFunctionsInFile(path: string, text: string, limit: number): LongFunction[] {
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  const found: LongFunction[] = [];
  const visit = (node: ts.Node): void => {
    if (isMeasured(node) && node.body) {
      const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = last - first + 1;
      if (lines > limit) found.push({ file: path, name: functionName(node), line: first + 1, lines });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Every function over `limit` lines under the given folders of `root`, paths relative to `root`. */
export function longFunctions(root: string, folders: string[], limit: number): LongFunction[] {
  return folders.flatMap((folder) =>
    sourceFiles(join(root, folder)).flatMap((path) => longFunctionsInFile(relative(root, path), readFileSync(path, 'utf8'), limit)),
  );
}

if (process.argv[1] && /function-lengths\.m?js$/.test(process.argv[1])) {
  const limit = Number(process.argv[2] ?? 80);
  const root = process.cwd();
  for (const f of longFunctions(root, ['src', 'cmdlets'], limit).sort((a, b) => b.lines - a.lines)) {
    console.log(`${String(f.lines).padStart(4)}  ${f.file}:${f.line}  ${f.name}`);
  }
}
