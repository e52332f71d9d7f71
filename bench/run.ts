/**
 * Benchmark entry point (`npm run bench`): runs every bench (ingest, segment, dvh, organize, radiomics, robustness, soak) and
 * prints one final `BENCH_RESULT {"ingest": {...}, ...}` JSON line. BENCH_ONLY=<name> runs just that one. Exits non-zero only on errors; a missed target is reported
 * as MISS in the output, not as a failure.
 */
import { abortIngestBench, ingestBench, type IngestResult } from './ingest.js';
import { abortSegmentBench, segmentBench, type SegmentResult } from './segment.js';
import { dvhBench, type DvhBenchResult } from './dvh.js';
import { abortOrganizeBench, runOrganizeBench, type OrganizeBenchResult } from './organize.js';
import { radiomicsBench, type RadiomicsBenchResult } from './radiomics.js';
import { robustnessBench, type RobustnessBenchResult } from './robustness.js';
import { abortSoakBench, soakBench, type SoakResult } from './soak.js';

const BENCHES = ['ingest', 'segment', 'dvh', 'organize', 'radiomics', 'robustness', 'soak'] as const;
type BenchName = (typeof BENCHES)[number];

// On Ctrl-C / SIGTERM still stop the children and delete the temp folders before exiting.
let aborting = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    aborting = true;
    console.error(`\n${signal}: stopping children and removing the temp folder`);
    abortOrganizeBench();
    abortSoakBench();
    void Promise.allSettled([abortIngestBench(), abortSegmentBench()]).finally(() => process.exit(130));
  });
}

function selected(): BenchName[] {
  const only = process.env.BENCH_ONLY?.trim();
  if (!only) return [...BENCHES];
  if (!(BENCHES as readonly string[]).includes(only)) throw new Error(`BENCH_ONLY must be one of ${BENCHES.join(', ')}, got "${only}"`);
  return [only as BenchName];
}

async function main(): Promise<void> {
  const benches = selected();
  const result: { ingest?: IngestResult; segment?: SegmentResult; dvh?: DvhBenchResult; organize?: OrganizeBenchResult; radiomics?: RadiomicsBenchResult; robustness?: RobustnessBenchResult; soak?: SoakResult } = {};
  if (benches.includes('ingest')) result.ingest = await ingestBench();
  if (benches.includes('segment')) {
    if (result.ingest) console.log('');
    result.segment = await segmentBench();
  }
  if (benches.includes('dvh')) {
    console.log('');
    result.dvh = await dvhBench();
  }
  if (benches.includes('organize')) {
    console.log('');
    result.organize = await runOrganizeBench();
  }
  if (benches.includes('radiomics')) {
    console.log('');
    result.radiomics = await radiomicsBench();
  }
  if (benches.includes('robustness')) {
    console.log('');
    result.robustness = await robustnessBench();
  }
  if (benches.includes('soak')) {
    console.log('');
    result.soak = await soakBench();
  }
  console.log(`\nBENCH_RESULT ${JSON.stringify(result)}`);
}

main().then(
  () => process.exit(0),
  (e) => {
    if (aborting) return; // the bench failed because its children were stopped: the signal handler exits
    console.error(`bench failed: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
