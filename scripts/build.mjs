// Builds everything from the sources: the host and one bundle per cmdlet (so a call loads only
// its own cmdlet), the compiled manifests the host reads at start-up, and the PowerShell module.
import { build } from 'esbuild';
import { bundleOptions } from './bundle-options.mjs';
import { existsSync, readdirSync, renameSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
// Built beside dist/ and swapped in at the end, so a command or test running meanwhile finds the
// old build or the new one, never a half-written or empty dist/.
const next = join(root, 'dist.next');
rmSync(next, { recursive: true, force: true });
mkdirSync(next, { recursive: true });

const entryPoints = {
  'host/main': 'src/host/main.ts',
  'engine/job-runner': 'src/engine/job-runner.ts',
  // Worker threads that open chunks in a restore (src/repository/chunk-workers.ts) and that name,
  // compress and seal them in a backup (src/repository/packers.ts).
  'repository/chunk-worker': 'src/repository/chunk-worker.ts',
  'repository/pack-worker': 'src/repository/pack-worker.ts',
  'tools/build-tools': 'scripts/build-tools.ts',
  'tools/bench': 'scripts/bench.ts',
};
for (const file of readdirSync(join(root, 'cmdlets')).filter((f) => f.endsWith('.ts'))) {
  entryPoints[`cmdlets/${file.slice(0, -3)}`] = `cmdlets/${file}`;
}

// The metafile says which sources (and packages) went into which chunk: the start-up test reads it.
const { metafile } = await build({ ...bundleOptions(root, entryPoints, next), metafile: true });
const outputs = Object.fromEntries(Object.entries(metafile.outputs).map(([out, v]) => [out.replace(/^dist\.next\//, 'dist/'), v]));
writeFileSync(join(next, 'metafile.json'), JSON.stringify({ ...metafile, outputs }));

execFileSync(process.execPath, [join(next, 'tools/build-tools.js'), root, next], { stdio: 'inherit' });

const old = join(root, `dist.old-${process.pid}`);
if (existsSync(dist)) renameSync(dist, old);
renameSync(next, dist);
rmSync(old, { recursive: true, force: true });
