import { defineConfig } from 'vitest/config';

/**
 * Benchmarks written as vitest files (`test/**\/*.bench.ts`), run by `npm run loadtest:doors`; `npm test`
 * does not pick them up (vitest.config.ts includes `*.test.ts` only). They start real processes and play
 * calls in real time: one file at a time, long timeouts, and no retry (a second run would hide a miss and
 * double the time).
 */
export default defineConfig({
  test: {
    include: ['test/**/*.bench.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
    retry: 0,
    fileParallelism: false,
    reporters: ['default'],
  },
});
