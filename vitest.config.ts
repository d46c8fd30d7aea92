import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Workspace packages resolve to their built dist/ here, as in production and in the child
  // processes the tests start: `npm test` builds first; after editing src/, rebuild
  // (`npx tsc -b`) before running vitest alone.
  test: {
    include: ['gateway/test/**/*.test.ts', 'auth-service/test/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // two cores: a few files at a time, each talking to real processes
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 20_000,
    hookTimeout: 30_000,
    reporters: ['default'],
  },
});
