import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'gateway/**/*.test.ts', 'adapters/**/*.test.ts', 'test/**/*.test.ts', 'deploy/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // End-to-end suites start real processes (nats-server, engines); two cores: run files one at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
