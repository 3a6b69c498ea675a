import { defineConfig } from 'vitest/config';

export default defineConfig({
  // A .ps1 imported from the sources is its text, as esbuild's text loader makes it in the build
  // (scripts/bundle-options.mjs): the module generator embeds src/psmodule/AzsBackup.Runtime.ps1.
  plugins: [
    {
      name: 'ps1-as-text',
      transform(code, id) {
        return id.endsWith('.ps1') ? { code: `export default ${JSON.stringify(code)};`, map: null } : undefined;
      },
    },
  ],
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Integration suites start real servers (Samba, PostgreSQL) and real child processes. On the
    // 2-core build VM two files at a time left the CPU idle a fifth of the run (files waiting on
    // servers, pauses and timeouts): the suite took 583 s with two, 470 s with three (vmstat idle
    // ~20% against ~5%), every test passing.
    maxWorkers: 3,
  },
});
