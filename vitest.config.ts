import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // workspace packages resolve to their TypeScript sources under test
    conditions: ['source'],
  },
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
