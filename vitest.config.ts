import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real servers (DCMTK, Orthanc, the node) on loopback ports;
    // running files in parallel on 2 cores makes timings flaky, so one file at a time.
    fileParallelism: false,
    pool: 'forks',
  },
});
