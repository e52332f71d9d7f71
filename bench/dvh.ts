/**
 * DVH benchmark: all ROIs of a synthetic 120-slice 512x512 plan (CT geometry 0.98 mm x 0.98 mm x
 * 2.5 mm, dose grid 2.5 mm, 10 ROIs including a large BODY), ours against dicompyler-core's DVH loop
 * (dvhcalc.get_dvh per ROI, default arguments) on the same RTSTRUCT and RTDOSE files, in the same run.
 *
 * Timed: ours = parse the RTSTRUCT and the RTDOSE from memory + DVH of every ROI + metrics, in this
 * process; dicompyler = its loop over the ROIs with both files already read by pydicom (timed inside
 * the Python process, so interpreter start-up is not counted). R rounds each (BENCH_DVH_ROUNDS,
 * default 3); the ratio of the medians is reported against the target (>= 10x faster).
 * Run: `npx tsc -p tsconfig.json && node dist/bench/dvh.js` (or through bench/run.ts once registered).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRtDose, parseRtDose } from '../src/dicom/rt-dose.js';
import { SOP_CLASS } from '../src/dicom/sop-classes.js';
import { computeDvhs, prepareDoseField } from '../src/dvh/dvh.js';
import { dvhMetrics } from '../src/dvh/metrics.js';
import { axialGrid, circleContour, cylinderContours, gaussian, planes, ringContours, sampleDose, sphereContours } from '../src/dvh/synthetic-plan.js';
import type { Contour } from '../src/geometry/types.js';
import { buildRtStruct, readRtStruct, type RtStructRoiInput } from '../src/rt/rtstruct.js';
import { median, positiveIntEnv } from './stats.js';

const SPEED_TARGET = 10;
const SLICES = 120;
const SLICE_MM = 2.5;
const SYSTEM_PYTHON = '/usr/bin/python3';
/** test/fixtures/dvh_reference.py, from the source tree (dist/bench/dvh.js or bench/dvh.ts). */
const REFERENCE_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '../..' : '..', 'test/fixtures/dvh_reference.py');

export interface DvhBenchResult {
  rounds: number;
  rois: number;
  oursStepMedianS: { readRtStruct: number; readRtDose: number; dvh: number };
  oursRoundsS: number[];
  dicompylerRoundsS: number[];
  oursMedianS: number;
  dicompylerMedianS: number;
  speedup: number;
  /** dicompyler-core / ours without reading the RTSTRUCT: the DVH computation alone. */
  dvhOnlySpeedup: number;
  speedupTarget: number;
  pass: boolean;
}

/** The plan: CT slice planes, ROIs drawn on them, and a dose with a target peak and fall-off. */
function plan(): { rs: Buffer; rd: Buffer } {
  const z0 = -((SLICES - 1) * SLICE_MM) / 2;
  const ctZ = planes(z0, -z0, SLICE_MM);
  const slices = ctZ.map((z, k) => ({ sopInstanceUid: `2.25.9000${k}`, sopClassUid: SOP_CLASS.CtImage, zMm: z }));
  const ellipse = (rx: number, ry: number, z: number, points: number): Contour => {
    const c = circleContour([0, 0], 1, z, points);
    for (let q = 0; q < points; q++) {
      c.points[3 * q] *= rx;
      c.points[3 * q + 1] = c.points[3 * q + 1] * ry + 10;
    }
    return c;
  };
  const roi = (number: number, name: string, contours: Contour[]): RtStructRoiInput => ({
    number, name, color: [number * 20, 100, 200], interpretedType: number === 1 ? 'EXTERNAL' : 'ORGAN', algorithm: 'AUTOMATIC', contours,
  });
  // Contours as dense as marching squares on a 512 x 512 CT gives (about one point per mm of boundary).
  const rois = [
    roi(1, 'BODY', ctZ.map((z) => ellipse(170, 120, z, 900))),
    roi(2, 'PTV', sphereContours([10, 0, 0], 45, ctZ, 280)),
    roi(3, 'CTV', sphereContours([10, 0, 0], 35, ctZ, 220)),
    roi(4, 'LUNG_L', cylinderContours([80, 0], 45, planes(-80, 100, SLICE_MM), 280)),
    roi(5, 'LUNG_R', cylinderContours([-80, 0], 45, planes(-80, 100, SLICE_MM), 280)),
    roi(6, 'HEART', sphereContours([-20, 40, -40], 50, ctZ, 300)),
    roi(7, 'SPINAL_CORD', cylinderContours([0, 90], 6, ctZ, 40)),
    roi(8, 'ESOPHAGUS', ringContours([0, 60], 10, 5, ctZ, 64)),
    roi(9, 'LIVER', sphereContours([-60, 20, -120], 70, ctZ, 440)),
    roi(10, 'SKIN_RING', ctZ.flatMap((z) => [ellipse(170, 120, z, 900), ellipse(165, 115, z, 900)])),
  ];
  const rs = buildRtStruct({
    ct: { studyInstanceUid: '2.25.91', seriesInstanceUid: '2.25.92', frameOfReferenceUid: '2.25.93', patientId: 'BENCH', patientName: 'DVH^BENCH', slices },
    rois, deterministic: { seed: 'dvh-bench' },
  });
  const grid = axialGrid([-200, -150, z0], [2.5, 2.5, 2.5], [161, 121, Math.round((-2 * z0) / 2.5) + 1]);
  const field = gaussian([10, 0, 0], 60, 40);
  const doseGy = sampleDose(grid, (x, y, z) => field(x, y, z) + 1.5 * Math.exp(-Math.hypot(x, y - 10) / 120));
  const rd = buildRtDose({
    patientId: 'BENCH', patientName: 'DVH^BENCH', studyInstanceUid: '2.25.91', frameOfReferenceUid: '2.25.93', grid, doseGy,
    summationType: 'PLAN', referencedPlan: { sopInstanceUid: '2.25.94' },
  });
  return { rs, rd };
}

interface OursRound {
  seconds: number;
  /** Seconds per step: reading the RTSTRUCT, reading the RTDOSE, DVHs + metrics. */
  steps: { readRtStruct: number; readRtDose: number; dvh: number };
  dmean: Record<string, number | null>;
}

function oursOnce(rs: Buffer, rd: Buffer): OursRound {
  const now = () => Number(process.hrtime.bigint()) / 1e9;
  const t0 = now();
  const structure = readRtStruct(rs);
  const t1 = now();
  const field = prepareDoseField(parseRtDose(rd));
  const t2 = now();
  const dvhs = computeDvhs(field, structure.rois.map((r) => ({ number: r.number, name: r.name, contours: r.contours })));
  const metrics = dvhs.map((d) => dvhMetrics(d));
  const t3 = now();
  return {
    seconds: t3 - t0,
    steps: { readRtStruct: t1 - t0, readRtDose: t2 - t1, dvh: t3 - t2 },
    dmean: Object.fromEntries(dvhs.map((d, i) => [d.roiName, metrics[i].DmeanGy])),
  };
}

function dicompyler(rsPath: string, rdPath: string, rounds: number): Promise<{ loop_seconds: number[]; rois: { name: string; mean: number | null; volume: number }[] }> {
  return new Promise((resolve, reject) => {
    execFile(SYSTEM_PYTHON, [REFERENCE_SCRIPT, rsPath, rdPath, String(rounds)], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dicompyler-core run failed: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

export async function dvhBench(): Promise<DvhBenchResult> {
  const rounds = positiveIntEnv('BENCH_DVH_ROUNDS', 3);
  const work = mkdtempSync(path.join(tmpdir(), 'dvh-bench-'));
  try {
    const t = Date.now();
    const { rs, rd } = plan();
    const rsPath = path.join(work, 'RS.dcm');
    const rdPath = path.join(work, 'RD.dcm');
    writeFileSync(rsPath, rs);
    writeFileSync(rdPath, rd);
    console.log(`dvh bench: ${SLICES}-slice plan, RTSTRUCT ${(rs.length / 1e6).toFixed(1)} MB, RTDOSE ${(rd.length / 1e6).toFixed(1)} MB, written in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const ours: number[] = [];
    const steps: OursRound['steps'][] = [];
    let dmean: Record<string, number | null> = {};
    oursOnce(readFileSync(rsPath), readFileSync(rdPath)); // warm-up: JIT, module loading
    for (let r = 0; r < rounds; r++) {
      const once = oursOnce(readFileSync(rsPath), readFileSync(rdPath));
      ours.push(once.seconds);
      steps.push(once.steps);
      dmean = once.dmean;
    }
    const ref = await dicompyler(rsPath, rdPath, rounds);
    console.log(`\nROI           ours Dmean  dicompyler Dmean  dicompyler volume cm3`);
    for (const r of ref.rois) console.log(`${r.name.padEnd(12)}  ${String(dmean[r.name]?.toFixed(2)).padStart(10)}  ${String(r.mean?.toFixed(2)).padStart(16)}  ${r.volume.toFixed(1).padStart(21)}`);
    console.log(`\nround  ours_s  dicompyler_s`);
    for (let r = 0; r < rounds; r++) console.log(`${String(r + 1).padEnd(5)}  ${ours[r].toFixed(3)}   ${ref.loop_seconds[r].toFixed(3)}`);
    const stepMedians = {
      readRtStruct: median(steps.map((x) => x.readRtStruct)),
      readRtDose: median(steps.map((x) => x.readRtDose)),
      dvh: median(steps.map((x) => x.dvh)),
    };
    console.log(`ours, per step (median s): read RTSTRUCT ${stepMedians.readRtStruct.toFixed(3)}, read RTDOSE ${stepMedians.readRtDose.toFixed(3)}, DVH + metrics ${stepMedians.dvh.toFixed(3)}`);
    const oursMedianS = median(ours);
    const dicompylerMedianS = median(ref.loop_seconds);
    const speedup = dicompylerMedianS / oursMedianS;
    const pass = speedup >= SPEED_TARGET;
    console.log(`\ndvh speed-up (dicompyler-core / ours, medians): ${speedup.toFixed(1)}x (target >= ${SPEED_TARGET}x) ${pass ? 'PASS' : 'MISS'}`);
    // dicompyler's loop starts from parsed pydicom datasets; ours above includes parsing the RTSTRUCT.
    const dvhOnlySpeedup = dicompylerMedianS / (stepMedians.readRtDose + stepMedians.dvh);
    console.log(`  DVH computation alone (no RTSTRUCT reading): ${dvhOnlySpeedup.toFixed(1)}x`);
    return { rounds, rois: ref.rois.length, dvhOnlySpeedup, oursStepMedianS: stepMedians, oursRoundsS: ours, dicompylerRoundsS: ref.loop_seconds, oursMedianS, dicompylerMedianS, speedup, speedupTarget: SPEED_TARGET, pass };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Prints the bench and its one-line JSON result. */
export async function runDvhBench(): Promise<void> {
  const result = await dvhBench();
  console.log(`\nBENCH_RESULT ${JSON.stringify({ dvh: result })}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  runDvhBench().then(
    () => process.exit(0),
    (e) => {
      console.error(`dvh bench failed: ${(e as Error).stack ?? e}`);
      process.exit(1);
    },
  );
}
