// Builds everything from the sources: the host and one bundle per cmdlet (so a call loads only
// its own cmdlet), the compiled manifests the host reads at start-up, and the PowerShell module.
import { build } from 'esbuild';
import { readdirSync, rmSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const entryPoints = {
  'host/main': 'src/host/main.ts',
  'engine/job-runner': 'src/engine/job-runner.ts',
  'tools/build-tools': 'scripts/build-tools.ts',
  'tools/bench': 'scripts/bench.ts',
};
for (const file of readdirSync(join(root, 'cmdlets')).filter((f) => f.endsWith('.ts'))) {
  entryPoints[`cmdlets/${file.slice(0, -3)}`] = `cmdlets/${file}`;
}

await build({
  absWorkingDir: root,
  entryPoints,
  outdir: dist,
  bundle: true,
  splitting: true,
  // Chunks sit one folder deep like every entry, so `new URL('../x', import.meta.url)` means the
  // same thing wherever esbuild puts the code.
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Native addons stay in node_modules.
  external: ['zstd-napi', 'better-sqlite3'],
  banner: { js: "import { createRequire as __azsCreateRequire } from 'node:module'; const require = __azsCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  legalComments: 'none',
});

execFileSync(process.execPath, [join(dist, 'tools/build-tools.js'), root], { stdio: 'inherit' });
