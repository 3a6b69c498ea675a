import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Integration suites start real servers (Samba, PostgreSQL) and real child processes; two cores.
    maxWorkers: 2,
  },
});
