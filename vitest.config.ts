import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'gateway/**/*.test.ts', 'adapters/**/*.test.ts', 'test/**/*.test.ts', 'deploy/**/*.test.ts'],
    testTimeout: 120_000,
    // A test that fails is run once more, and the retry shows in the report. Issue 12's socket drop at
    // open (both ends see 1006 within ~10 ms, cause not yet found) struck 2 of ~800 tests in one full run
    // of three; it must not decide whether a change lands. A test that fails twice fails.
    retry: 1,
    hookTimeout: 60_000,
    // End-to-end suites start real processes (nats-server, engines); two cores: run files one at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
