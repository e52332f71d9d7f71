import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The SLURM suite starts a real cluster as root (npm run test:slurm, which .ci/run calls after npm test).
    exclude: ['**/node_modules/**', ...(process.env.RTPIPELINE_TEST_SLURM === '1' ? [] : ['test/slurm.test.ts'])],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real servers (DCMTK, Orthanc, the node) on loopback ports;
    // running files in parallel on 2 cores makes timings flaky, so one file at a time.
    fileParallelism: false,
    pool: 'forks',
  },
});
