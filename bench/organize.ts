/**
 * Organize benchmark: how fast scan.ts indexes a large tree of DICOM files.
 *
 * Builds BENCH_ORGANIZE_FILES (default 100,000) small CT files once in a temp folder (1,000 patients
 * x 100 slices of 8x8 pixels, each a real Part 10 file: one encoded slice with its UIDs and PatientID
 * rewritten in place, so building costs a write per file, not an encode). Then, in alternating rounds
 * (BENCH_ORGANIZE_ROUNDS, default 3), times on the same, warm tree:
 *   - `find DIR -type f -printf '%s\n'`: a walk that stats every file and reads none (the floor for
 *     any tool that visits each file);
 *   - the same walk and stat in-process (readdir + fs.stat with the scan's concurrency);
 *   - scanTree (list, open, read the first bytes, parse, close) with the default concurrency.
 * Reports files/s for each and the ratio scan / find. The folder is deleted at the end, also on failure.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import type { Uid } from '../src/dicom/uid.js';
import { scanTree } from '../src/organize/scan.js';
import { median, positiveIntEnv } from './stats.js';

const SLICES_PER_PATIENT = 100;
const WRITE_CONCURRENCY = 32;
const SCAN_CONCURRENCY = 16;

export interface OrganizeBenchResult {
  files: number;
  rounds: number;
  buildS: number;
  findS: number[];
  statInProcessS: number[];
  scanS: number[];
  findFilesPerS: number;
  statInProcessFilesPerS: number;
  scanFilesPerS: number;
  /** Median scan time / median find time. */
  ratioScanToFind: number;
}

let workDir: string | undefined;

export function abortOrganizeBench(): void {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
}

export async function runOrganizeBench(): Promise<OrganizeBenchResult> {
  const files = positiveIntEnv('BENCH_ORGANIZE_FILES', 100_000);
  const rounds = positiveIntEnv('BENCH_ORGANIZE_ROUNDS', 3);
  workDir = await mkdtemp(path.join(tmpdir(), 'bench-organize-'));
  try {
    const tree = path.join(workDir, 'tree');
    console.log(`organize: building ${files} DICOM files in ${tree} ...`);
    const t0 = performance.now();
    await buildTree(tree, files, workDir);
    const buildS = (performance.now() - t0) / 1000;
    console.log(`organize: built in ${buildS.toFixed(1)} s`);

    const findS: number[] = [];
    const statInProcessS: number[] = [];
    const scanS: number[] = [];
    // One untimed walk warms the page cache, so every timed round reads the same warm tree.
    execFileSync('find', [tree, '-type', 'f', '-printf', '%s\n'], { maxBuffer: 64 << 20 });
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? ['find', 'stat', 'scan'] : ['scan', 'stat', 'find'];
      for (const which of order) {
        if (which === 'find') findS.push(time(() => findCount(tree, files)));
        if (which === 'stat') statInProcessS.push(await timeAsync(() => statAll(tree, files)));
        if (which === 'scan') {
          scanS.push(
            await timeAsync(async () => {
              const res = await scanTree(tree, { concurrency: SCAN_CONCURRENCY });
              if (res.instances.length !== files) throw new Error(`scan found ${res.instances.length} instances, expected ${files} (skipped: ${res.skipped[0]?.reason})`);
            }),
          );
        }
      }
      console.log(`organize: round ${r + 1}: find ${findS[r].toFixed(2)} s, in-process stat ${statInProcessS[r].toFixed(2)} s, scan ${scanS[r].toFixed(2)} s`);
    }
    const rate = (xs: number[]) => Math.round(files / median(xs));
    const result: OrganizeBenchResult = {
      files,
      rounds,
      buildS: round2(buildS),
      findS: findS.map(round2),
      statInProcessS: statInProcessS.map(round2),
      scanS: scanS.map(round2),
      findFilesPerS: rate(findS),
      statInProcessFilesPerS: rate(statInProcessS),
      scanFilesPerS: rate(scanS),
      ratioScanToFind: round2(median(scanS) / median(findS)),
    };
    console.log(
      `organize: ${files} files: scan ${result.scanFilesPerS} files/s, find+stat ${result.findFilesPerS} files/s, ` +
        `in-process stat ${result.statInProcessFilesPerS} files/s; scan / find = ${result.ratioScanToFind}`,
    );
    return result;
  } finally {
    abortOrganizeBench();
  }
}

/** One encoded 8x8 CT slice, rewritten per file: SOP, series, study and frame UIDs and PatientID. */
async function buildTree(tree: string, files: number, scratch: string): Promise<void> {
  const fixed = (n: number) => `1.2.826.0.1.3680043.10.999.${n}.000000000000` as Uid;
  const template = await writeCtSeries(path.join(scratch, 'template'), {
    patientId: 'BENCH000000',
    patientName: 'BENCH^ORGANIZE',
    studyDate: '20240101',
    studyInstanceUid: fixed(1),
    seriesInstanceUid: fixed(2),
    frameOfReferenceUid: fixed(3),
    phantom: { rows: 8, columns: 8, slices: 1, pixelSpacingMm: [4, 4], sliceThicknessMm: 5 },
  });
  const bytes = readFileSync(template.files[0]);
  const sopUid = path.basename(template.files[0]).replace(/^CT\./, '').replace(/\.dcm$/, '');
  const fields = [
    { text: sopUid, make: (n: number) => `2.25.${String(n).padStart(sopUid.length - 5, '0')}` },
    { text: fixed(1), make: (_n: number, p: number) => `1.2.826.0.1.3680043.10.999.1.${String(p).padStart(12, '0')}` },
    { text: fixed(2), make: (_n: number, p: number) => `1.2.826.0.1.3680043.10.999.2.${String(p).padStart(12, '0')}` },
    { text: fixed(3), make: (_n: number, p: number) => `1.2.826.0.1.3680043.10.999.3.${String(p).padStart(12, '0')}` },
    { text: 'BENCH000000', make: (_n: number, p: number) => `BENCH${String(p).padStart(6, '0')}` },
  ].map((f) => ({ ...f, at: occurrences(bytes, f.text) }));
  for (const f of fields) if (f.at.length === 0) throw new Error(`template has no "${f.text}"`);

  const patients = Math.ceil(files / SLICES_PER_PATIENT);
  for (let p = 0; p < patients; p++) await mkdir(path.join(tree, `P${String(p).padStart(6, '0')}`, 'CT'), { recursive: true });
  let next = 0;
  await Promise.all(
    Array.from({ length: WRITE_CONCURRENCY }, async () => {
      while (next < files) {
        const n = next++;
        const p = Math.floor(n / SLICES_PER_PATIENT);
        const out = Buffer.from(bytes);
        for (const f of fields) {
          const value = f.make(n, p);
          for (const at of f.at) out.write(value, at, 'latin1');
        }
        await writeFile(path.join(tree, `P${String(p).padStart(6, '0')}`, 'CT', `${n}.dcm`), out);
      }
    }),
  );
}

function occurrences(buf: Buffer, text: string): number[] {
  const out: number[] = [];
  for (let at = buf.indexOf(text, 0, 'latin1'); at >= 0; at = buf.indexOf(text, at + 1, 'latin1')) out.push(at);
  return out;
}

function findCount(tree: string, expected: number): void {
  const out = execFileSync('find', [tree, '-type', 'f', '-printf', '%s\n'], { maxBuffer: 64 << 20 }).toString();
  const n = out.split('\n').filter(Boolean).length;
  if (n !== expected) throw new Error(`find listed ${n} files, expected ${expected}`);
}

/** readdir of every folder, then fs.stat of every file with the scan's concurrency. */
async function statAll(tree: string, expected: number): Promise<void> {
  const entries = await readdir(tree, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
  if (files.length !== expected) throw new Error(`readdir listed ${files.length} files, expected ${expected}`);
  let next = 0;
  await Promise.all(
    Array.from({ length: SCAN_CONCURRENCY }, async () => {
      while (next < files.length) await stat(files[next++]);
    }),
  );
}

function time(f: () => void): number {
  const t = performance.now();
  f();
  return (performance.now() - t) / 1000;
}

async function timeAsync(f: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await f();
  return (performance.now() - t) / 1000;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

// Run directly: node dist/bench/organize.js
if (import.meta.url === `file://${process.argv[1]}`) {
  runOrganizeBench().then(
    (r) => console.log(`BENCH_RESULT ${JSON.stringify({ organize: r })}`),
    (e) => {
      console.error(`bench failed: ${(e as Error).stack ?? e}`);
      process.exit(1);
    },
  );
}
