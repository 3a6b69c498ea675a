/**
 * Build entry: `node dist/src/psmodule/cli.js [--manifests DIR] [--out DIR] [--host FILE] [--version X]`.
 * Defaults fit the repository layout: manifests/, dist/powershell/AzsBackup, bin/azsbackup.js and
 * package.json's version, all relative to the repository root.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { isAzsError } from '../errors.js';
import { loadManifestSet } from '../manifest/load.js';
import { generateModule } from './generate.js';

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      root: { type: 'string' },
      manifests: { type: 'string' },
      out: { type: 'string' },
      host: { type: 'string' },
      version: { type: 'string' },
    },
    strict: true,
  });
  const root = resolve(values.root ?? process.cwd());
  const manifests = resolve(root, values.manifests ?? 'manifests');
  const outDir = resolve(root, values.out ?? 'dist/powershell/AzsBackup');
  const hostPath = resolve(root, values.host ?? 'bin/azsbackup.js');
  const version = values.version ?? (JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { version: string }).version;
  await generateModule(loadManifestSet(manifests), { version, hostPath, outDir });
  process.stdout.write(`PowerShell module ${version} written to ${outDir}\n`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e: unknown) => {
      process.stderr.write(`${isAzsError(e) && e.recommendedAction ? `${e.message} ${e.recommendedAction}` : String((e as Error).message ?? e)}\n`);
      process.exitCode = isAzsError(e) ? e.exitCode : 1;
    },
  );
}
