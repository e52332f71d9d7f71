/**
 * Soak (`BENCH_ONLY=soak npm run bench`): the long versions of the reliability tests, run by vitest
 * with RTPIPELINE_SOAK=1 (8 x 500 load, 10 kill -9, 10,000 fuzz cases, PACS down 60 s). The tests
 * are the same code as in CI at a larger scale, so what the soak proves is what CI checks; each
 * writes its figures to a JSON-lines file, printed here as one table. RELIABILITY_* variables
 * override single figures (see test/helpers/reliability.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SoakResult {
  passed: boolean;
  seconds: number;
  figures: Record<string, unknown>[];
}

/** The repository root, from dist/bench/soak.js or bench/soak.ts. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
const TESTS = ['test/reliability-load.test.ts', 'test/reliability-faults.test.ts', 'test/reliability-fuzz.test.ts'];

let child: ReturnType<typeof spawn> | undefined;
export function abortSoakBench(): void {
  if (child?.pid) process.kill(-child.pid, 'SIGTERM');
}

export async function soakBench(): Promise<SoakResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rtp-soak-'));
  const out = path.join(dir, 'figures.jsonl');
  const t0 = Date.now();
  try {
    console.log(`soak: ${TESTS.join(', ')} with RTPIPELINE_SOAK=1 (this takes a while)`);
    const code = await new Promise<number | null>((resolve) => {
      child = spawn(process.execPath, [path.join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', ...TESTS, '--reporter=verbose'], {
        cwd: ROOT,
        env: { ...process.env, RTPIPELINE_SOAK: '1', RTPIPELINE_RELIABILITY_OUT: out },
        stdio: ['ignore', 'inherit', 'inherit'],
        detached: true, // its own process group, so an abort stops the nodes and Orthancs it started
      });
      child.once('exit', (c) => resolve(c));
    });
    let figures: Record<string, unknown>[] = [];
    try {
      figures = readFileSync(out, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    } catch {
      /* no figures: every test failed before reporting */
    }
    const result = { passed: code === 0, seconds: Math.round((Date.now() - t0) / 1000), figures };
    printTable(result);
    // A soak that failed is an error of the run, not a missed target.
    if (!result.passed) throw new Error('soak failed: see the vitest output above');
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function printTable(r: SoakResult): void {
  const get = (name: string) => r.figures.find((f) => f.scenario === name) ?? {};
  const load = get('load');
  const faults = get('faults');
  const pacs = get('pacs-down');
  const disk = get('disk-threshold');
  const fuzz = get('fuzz');
  const files = get('hostile-files');
  const rows: [string, string][] = [
    ['load held', `${load.acknowledged ?? '?'}/${load.instances ?? '?'} instances acknowledged, ${load.stored ?? '?'} stored (${load.senders ?? '?'} senders x ${load.perSender ?? '?'}, ${load.loadSeconds ?? '?'} s, ${load.instancesPerSecond ?? '?'}/s, job ${load.jobDuringLoad ?? '?'})`],
    ['peak RSS under load', `${load.peakRssMb ?? '?'} MB (VmHWM)`],
    ['faults survived', `${faults.kills ?? '?'} kill -9 (${Array.isArray(faults.phases) ? faults.phases.join(', ') : '?'}); RTSTRUCTs per study in Orthanc: ${JSON.stringify(faults.rtstructsPerStudy ?? '?')}`],
    ['nothing lost', `${faults.acknowledgedMissing ?? '?'} of ${faults.acknowledged ?? '?'} acknowledged instances missing`],
    ['PACS down', `${pacs.downSeconds ?? '?'} s, ${pacs.failedAttempts ?? '?'} failed attempts, delivered ${pacs.deliveredAfterMs ?? '?'} ms after it returned, ${pacs.rtstructsInPacs ?? '?'} copy`],
    ['disk threshold', `${disk.storedBeforeThreshold ?? '?'} of ${disk.slices ?? '?'} stored, then 0xA700; no partial files`],
    ['inputs tried', `${fuzz.cases ?? '?'} fuzzed PDU/dataset cases in ${fuzz.seconds ?? '?'} s; ${fuzz.acknowledged ?? '?'} acknowledged (all stored, parsable), ${fuzz.quarantined ?? '?'} quarantined with reasons`],
    ['RSS after fuzzing', `${fuzz.rssBeforeMb ?? '?'} -> ${fuzz.rssAfterMb ?? '?'} MB`],
    ['malformed files', `${files.watched ?? '?'} via the watched folder, ${files.uploaded ?? '?'} uploads incl. ${files.zipEntries ?? '?'} zip entries: ${files.refused ?? '?'} refused with reasons, ${files.stored ?? '?'} valid stored`],
    ['result', `${r.passed ? 'PASS' : 'FAIL'} in ${r.seconds} s`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  console.log('\nSoak (RTPIPELINE_SOAK=1)');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
}
