// Builds everything from the sources: the host and one bundle per cmdlet (so a call loads only
// its own cmdlet), the compiled manifests the host reads at start-up, and the PowerShell module.
import { build } from 'esbuild';
import { bundleOptions } from './bundle-options.mjs';
import { readdirSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
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

// The metafile says which sources (and packages) went into which chunk: the start-up test reads it.
const { metafile } = await build({ ...bundleOptions(root, entryPoints, dist), metafile: true });
writeFileSync(join(dist, 'metafile.json'), JSON.stringify(metafile));

execFileSync(process.execPath, [join(dist, 'tools/build-tools.js'), root], { stdio: 'inherit' });
