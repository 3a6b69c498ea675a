// Build step run by scripts/build.mjs: validates and compiles the manifests for the host, and
// generates the PowerShell module from the same manifests.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compileManifests, loadManifestSet } from '../src/manifest/load.js';
import { writeParameterTypes } from '../src/manifest/parameter-types.js';
import { generateModule } from '../src/psmodule/generate.js';
import { onlineHelpUri, type PackageLinks } from '../src/psmodule/help-uri.js';

const root = resolve(process.argv[2] ?? '.');
/** Where the build is being written (scripts/build.mjs builds into dist.next/ and swaps it in). */
const out = resolve(process.argv[3] ?? join(root, 'dist'));
const manifests = join(root, 'manifests');
writeParameterTypes(root, loadManifestSet(manifests).cmdlets);
compileManifests(manifests, join(out, 'manifests.json'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string } & PackageLinks;
await generateModule(loadManifestSet(manifests), {
  version: pkg.version,
  helpUri: onlineHelpUri(pkg),
  hostPath: join(root, 'bin', 'azsbackup.js'),
  outDir: join(out, 'powershell', 'AzsBackup'),
});
process.stdout.write(`Built dist/ (host, cmdlets, manifests.json) and dist/powershell/AzsBackup ${pkg.version}\n`);
