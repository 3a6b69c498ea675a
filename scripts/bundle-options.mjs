// How the host and its cmdlets are bundled: shared by the build and by the host's end-to-end
// test, so the test exercises the bundle users run.
export function bundleOptions(root, entryPoints, outdir) {
  return {
    absWorkingDir: root,
    entryPoints,
    outdir,
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
    // The module generator's PowerShell runtime (src/psmodule/AzsBackup.Runtime.ps1) is embedded as text.
    loader: { '.ps1': 'text' },
    banner: {
      js: "import { createRequire as __azsCreateRequire } from 'node:module'; const require = __azsCreateRequire(import.meta.url);",
    },
    logLevel: 'warning',
    legalComments: 'none',
  };
}
