// Build step run by scripts/build.mjs: validates and compiles the manifests for the host, and
// generates the PowerShell module from the same manifests.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compileManifests, loadManifestSet } from '../src/manifest/load.js';
import { generateModule } from '../src/psmodule/generate.js';

const root = resolve(process.argv[2] ?? '.');
const manifests = join(root, 'manifests');
compileManifests(manifests, join(root, 'dist', 'manifests.json'));
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
await generateModule(loadManifestSet(manifests), {
  version,
  hostPath: join(root, 'bin', 'azsbackup.js'),
  outDir: join(root, 'dist', 'powershell', 'AzsBackup'),
});
process.stdout.write(`Built dist/ (host, cmdlets, manifests.json) and dist/powershell/AzsBackup ${version}\n`);
