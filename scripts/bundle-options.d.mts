import type { BuildOptions } from 'esbuild';

/** Types for bundle-options.mjs, which the build runs as plain JavaScript and the tests import. */
export function bundleOptions(root: string, entryPoints: Record<string, string>, outdir: string): BuildOptions;
