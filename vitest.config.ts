import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // XState's development build runs its own checks (e.g. actors that cannot be persisted).
    execArgv: ['--conditions=development'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
