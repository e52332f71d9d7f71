/**
 * Benchmark entry point (`npm run bench`): runs every bench (currently only ingest) and prints one
 * final `BENCH_RESULT {...}` JSON line. Exits non-zero only on errors; a missed target is reported
 * as MISS in the output, not as a failure.
 */
import { abortIngestBench, ingestBench } from './ingest.js';

// On Ctrl-C / SIGTERM still stop the children and delete the temp folder before exiting.
let aborting = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    aborting = true;
    console.error(`\n${signal}: stopping children and removing the temp folder`);
    void abortIngestBench().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  const ingest = await ingestBench();
  console.log(`\nBENCH_RESULT ${JSON.stringify(ingest)}`);
}

main().then(
  () => process.exit(0),
  (e) => {
    if (aborting) return; // the bench failed because its children were stopped: the signal handler exits
    console.error(`bench failed: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
