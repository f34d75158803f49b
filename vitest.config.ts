import os from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * Two projects. `unit`: the colocated tests under src/, gateway/, adapters/ and deploy/ (they start no
 * callscribe process), in parallel on every core. `e2e`: test/, the suites that start callscribe,
 * nats-server, sipp or Chromium, one file at a time after the unit tests (two cores: a CPU-bound engine
 * beside another suite's makes latency-sensitive checks flaky). `npm run test:unit` runs the first alone.
 */
export default defineConfig({
  test: {
    testTimeout: 120_000,
    // A test that fails is run once more, and the retry shows in the report. Issue 12's socket drop at
    // open (both ends see 1006 within ~10 ms, cause not yet found) struck 2 of ~800 tests in one full run
    // of three; it must not decide whether a change lands. A test that fails twice fails.
    retry: 1,
    hookTimeout: 60_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'gateway/**/*.test.ts', 'adapters/**/*.test.ts', 'deploy/**/*.test.ts'],
          // Every core, said outright: left to its default, this vitest ran the unit files on one worker
          // here (93 s on 2 cores; 67 s with 2). Files share a worker's module cache (isolate: false):
          // importing the code once per worker instead of once per file took the rest (44 s). A unit
          // test must therefore leave no global state behind (timers restored, servers closed).
          maxWorkers: os.availableParallelism(),
          isolate: false,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/**/*.test.ts'],
          maxWorkers: Number(process.env.CALLSCRIBE_E2E_WORKERS ?? 3),
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
