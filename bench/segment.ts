/**
 * Segmentation benchmark: the built-in engine (read CT, NIfTI, BODY / LUNG_L / LUNG_R / BONES,
 * contours, RS_auto.dcm) against `plastimatch segment` (BODY only) on the same 200-slice 512x512 CT.
 *
 * Both sides run as a child process of their own and are measured the same way: the wall time of the
 * whole process (for ours: node startup and module loading included), and its peak RSS from GNU
 * `/usr/bin/time -f %M` (the kernel's ru_maxrss) or, without it, by polling /proc/<pid>/status VmHWM
 * every 20 ms. Our child also reports its own VmHWM from /proc/self/status just before it exits, as a
 * cross-check, and its per-step timings (autoSegment's timingsMs).
 *
 * R rounds (BENCH_SEG_ROUNDS, default 3), alternating which side goes first; the ratios of the medians
 * are reported against the targets. Everything lives in one temp folder that is deleted at the end, also
 * on failure, and every child (each in a process group of its own) is stopped.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { median, positiveIntEnv } from './stats.js';
import { baseEnv, Children, isRunning, sleep, type Child } from './children.js';
import type { AutoSegmentInput, AutoSegmentResult } from '../src/pipeline/auto-segment.js';

const SLICES = 200;
const TIME_RATIO_TARGET = 0.25;
const MEMORY_RATIO_TARGET = 0.5;
const GNU_TIME = '/usr/bin/time';
const PLASTIMATCH = 'plastimatch';
const RUN_TIMEOUT_MS = 10 * 60_000;
/** Our child, relative to this file once compiled (dist/bench/segment.js -> dist/bench/segment-child.js). */
const CHILD = fileURLToPath(new URL('./segment-child.js', import.meta.url));

type Side = 'ours' | 'plastimatch';

export interface SegmentResult {
  rounds: number;
  slices: number;
  memoryMethod: 'gnu-time' | 'poll-vmhwm';
  oursRoundsS: number[];
  plastimatchRoundsS: number[];
  oursMedianS: number;
  plastimatchMedianS: number;
  timeRatio: number;
  timeRatioTarget: number;
  timeRatioPass: boolean;
  oursPeakRoundsMb: number[];
  plastimatchPeakRoundsMb: number[];
  oursPeakMedianMb: number;
  plastimatchPeakMedianMb: number;
  memoryRatio: number;
  memoryRatioTarget: number;
  memoryRatioPass: boolean;
  /** Our child's own VmHWM (/proc/self/status at its end), per round: cross-check of oursPeakRoundsMb. */
  oursSelfVmHwmRoundsMb: number[];
  /** Median over the rounds of autoSegment's in-process wall time and of each of its steps. */
  oursAutoSegmentMedianMs: number;
  oursStepMedianMs: Record<string, number>;
  oursRois: AutoSegmentResult['rois'];
  /** BODY volume of plastimatch's body.mha (first round), for context; null if not readable. */
  plastimatchBodyCm3: number | null;
}

// ---------------------------------------------------------------------------------------------
// Child processes

// ---------------------------------------------------------------------------------------------
// Small helpers


function vmHwmKb(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined; // already gone
  }
}

/**
 * Runs cmd args to its end and returns its wall time (spawn to exit) and peak RSS in MiB: GNU time's
 * %M (ru_maxrss) when /usr/bin/time exists, else the largest VmHWM seen polling every 20 ms.
 * Fails loudly on a non-zero exit or a timeout.
 */
async function measured(children: Children, name: string, cmd: string, args: string[], work: string, useGnuTime: boolean): Promise<{ seconds: number; peakMb: number; child: Child }> {
  const timeFile = path.join(work, `${name}.maxrss`);
  rmSync(timeFile, { force: true });
  const child = useGnuTime
    ? children.spawn(name, GNU_TIME, ['-f', '%M', '-o', timeFile, cmd, ...args], baseEnv())
    : children.spawn(name, cmd, args, baseEnv());
  let timedOut = false;
  const timeout = setTimeout(() => {
    timedOut = true;
    void children.stop(child, 0);
  }, RUN_TIMEOUT_MS);
  let polledKb = 0;
  let polling = !useGnuTime;
  const poller = (async () => {
    while (polling && isRunning(child)) {
      const kb = vmHwmKb(child.proc.pid!);
      if (kb !== undefined) polledKb = Math.max(polledKb, kb);
      await sleep(20);
    }
  })();
  const { code, seconds } = await child.exited;
  polling = false;
  await poller;
  clearTimeout(timeout);
  if (timedOut) throw new Error(`${name} did not finish within ${RUN_TIMEOUT_MS / 60_000} min:\n${child.output()}`);
  if (code !== 0) throw new Error(`${name} exited with ${code ?? child.proc.signalCode}:\n${child.output()}`);
  let peakKb = polledKb;
  if (useGnuTime) {
    const text = readFileSync(timeFile, 'utf8').trim();
    peakKb = Number(text.split('\n').pop());
    if (!Number.isFinite(peakKb) || peakKb <= 0) throw new Error(`${name}: unexpected ${GNU_TIME} output "${text}"`);
  }
  if (peakKb <= 0) throw new Error(`${name}: no peak RSS measured`);
  return { seconds, peakMb: peakKb / 1024, child };
}

/** The number of non-zero voxels of an uncompressed MET_UCHAR / MET_SHORT .mha, times the voxel
 *  volume, in cm3; null if the file is not in that form. */
function mhaVolumeCm3(file: string): number | null {
  const buf = readFileSync(file);
  const marker = 'ElementDataFile = LOCAL';
  const headerEnd = buf.indexOf(marker);
  if (headerEnd < 0) return null;
  const header = buf.subarray(0, headerEnd).toString('latin1');
  const field = (k: string) => new RegExp(`^${k}\\s*=\\s*(.+)$`, 'm').exec(header)?.[1].trim();
  if (/^true$/i.test(field('CompressedData') ?? 'False')) return null;
  const type = field('ElementType');
  const dims = (field('DimSize') ?? '').split(/\s+/).map(Number);
  const spacing = (field('ElementSpacing') ?? field('ElementSize') ?? '').split(/\s+/).map(Number);
  const bytes = type === 'MET_UCHAR' || type === 'MET_CHAR' ? 1 : type === 'MET_SHORT' || type === 'MET_USHORT' ? 2 : 0;
  if (!bytes || dims.length !== 3 || spacing.length !== 3 || [...dims, ...spacing].some((x) => !(x > 0))) return null;
  let start = headerEnd + marker.length;
  while (buf[start] === 0x0d || buf[start] === 0x0a) start++;
  const n = dims[0] * dims[1] * dims[2];
  if (buf.length - start !== n * bytes) return null;
  let voxels = 0;
  if (bytes === 1) for (let i = start; i < buf.length; i++) voxels += buf[i] !== 0 ? 1 : 0;
  else for (let i = start; i < buf.length; i += 2) voxels += buf[i] !== 0 || buf[i + 1] !== 0 ? 1 : 0;
  return Math.round(((voxels * spacing[0] * spacing[1] * spacing[2]) / 1000) * 100) / 100;
}

// ---------------------------------------------------------------------------------------------
// The benchmark

let activeCleanup: (() => Promise<void>) | undefined;

/** Stops every child and deletes the temp folder of a run in progress (for signal handlers). */
export async function abortSegmentBench(): Promise<void> {
  await activeCleanup?.();
}

interface ChildReport {
  result: AutoSegmentResult;
  autoSegmentMs: number;
  vmHwmKb: number;
}

export async function segmentBench(): Promise<SegmentResult> {
  const rounds = positiveIntEnv('BENCH_SEG_ROUNDS', 3);
  const work = mkdtempSync(path.join(tmpdir(), `rtpipeline-bench-seg-${randomBytes(4).toString('hex')}-`));
  const children = new Children();
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= children.stopAll().finally(() => rmSync(work, { recursive: true, force: true })));
  activeCleanup = cleanup;

  try {
    console.log(`segment bench: temp folder ${work}`);
    if (!existsSync(CHILD)) throw new Error(`${CHILD} not found (run \`npm run build\` first)`);
    const useGnuTime = existsSync(GNU_TIME);
    const memoryMethod = useGnuTime ? 'gnu-time' : 'poll-vmhwm';
    console.log(`peak RSS measured with ${useGnuTime ? `${GNU_TIME} -f %M (ru_maxrss)` : '/proc/<pid>/status VmHWM polled every 20 ms'}, the same way for both sides`);

    // 1. The synthetic CT, written once.
    const t = Date.now();
    const ctDir = path.join(work, 'ct');
    const studyDate = '20250101';
    const ct = await writeCtSeries(ctDir, {
      patientId: 'BENCH-SEG',
      patientName: 'BENCH^SEGMENT',
      studyDate,
      phantom: { rows: 512, columns: 512, slices: SLICES, pixelSpacingMm: [0.9765625, 0.9765625], sliceThicknessMm: 2.5 },
    });
    console.log(`generated ${SLICES} CT slices (512x512) in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    const reports: ChildReport[] = [];
    const pmBody: { cm3: number | null } = { cm3: null };
    const run: Record<Side, (r: number) => Promise<{ seconds: number; peakMb: number }>> = {
      ours: async (r) => {
        const courseDir = path.join(work, `course-${r}`);
        const input: AutoSegmentInput = {
          ctFiles: ct.files,
          courseDir,
          study: {
            studyInstanceUid: ct.studyInstanceUid,
            seriesInstanceUid: ct.seriesInstanceUid,
            frameOfReferenceUid: ct.frameOfReferenceUid,
            patientId: 'BENCH-SEG',
            patientName: 'BENCH^SEGMENT',
            studyDate,
            studyTime: '120000',
            accessionNumber: '',
          },
          seed: `rtpipeline-bench-segment:${ct.seriesInstanceUid}`,
        };
        const inputFile = path.join(work, `input-${r}.json`);
        writeFileSync(inputFile, JSON.stringify(input));
        const m = await measured(children, 'ours', process.execPath, [CHILD, inputFile], work, useGnuTime);
        const line = m.child.stdout().split('\n').find((l) => l.startsWith('SEGMENT_CHILD '));
        if (!line) throw new Error(`ours: no SEGMENT_CHILD line in its output:\n${m.child.output()}`);
        const report = JSON.parse(line.slice('SEGMENT_CHILD '.length)) as ChildReport;
        if (!(statSync(report.result.rsAuto).size > 0)) throw new Error(`ours: empty ${report.result.rsAuto}`);
        const names = report.result.rois.map((x) => x.name).join(',');
        if (names !== 'BODY,LUNG_L,LUNG_R,BONES' || report.result.rois.some((x) => x.voxels === 0 || x.contours === 0)) {
          throw new Error(`ours: unexpected ROIs ${JSON.stringify(report.result.rois)}`);
        }
        reports.push(report);
        rmSync(courseDir, { recursive: true, force: true }); // keep disk use flat across rounds
        return m;
      },
      plastimatch: async (r) => {
        const out = path.join(work, `body-${r}.mha`);
        const m = await measured(children, 'plastimatch', PLASTIMATCH, ['segment', '--input', ctDir, '--output-img', out], work, useGnuTime);
        if (!existsSync(out) || !(statSync(out).size > 0)) throw new Error(`plastimatch wrote no ${out}:\n${m.child.output()}`);
        if (r === 1) pmBody.cm3 = mhaVolumeCm3(out);
        rmSync(out, { force: true });
        return m;
      },
    };

    // 2. Rounds, alternating which side goes first to even out cache effects.
    const times: Record<Side, number[]> = { ours: [], plastimatch: [] };
    const peaks: Record<Side, number[]> = { ours: [], plastimatch: [] };
    console.log(`\nround  first        plastimatch_s  ours_s   ours/pm   plastimatch_MB  ours_MB  ours/pm  (ours self VmHWM MB)`);
    for (let r = 1; r <= rounds; r++) {
      const order: Side[] = r % 2 === 1 ? ['plastimatch', 'ours'] : ['ours', 'plastimatch'];
      for (const side of order) {
        const m = await run[side](r);
        times[side].push(m.seconds);
        peaks[side].push(m.peakMb);
      }
      const [pt, ot, pm, om] = [times.plastimatch[r - 1], times.ours[r - 1], peaks.plastimatch[r - 1], peaks.ours[r - 1]];
      const self = reports[r - 1].vmHwmKb / 1024;
      console.log(
        `${String(r).padStart(5)}  ${order[0].padEnd(11)}  ${pt.toFixed(3).padStart(13)}  ${ot.toFixed(3).padStart(6)}  ${(ot / pt).toFixed(2).padStart(7)}   ` +
          `${pm.toFixed(0).padStart(14)}  ${om.toFixed(0).padStart(7)}  ${(om / pm).toFixed(2).padStart(7)}  (${self.toFixed(0)})`,
      );
    }
    const med = { pt: median(times.plastimatch), ot: median(times.ours), pm: median(peaks.plastimatch), om: median(peaks.ours) };
    console.log(`median ${' '.repeat(11)}  ${med.pt.toFixed(3).padStart(13)}  ${med.ot.toFixed(3).padStart(6)}  ${' '.repeat(7)}   ${med.pm.toFixed(0).padStart(14)}  ${med.om.toFixed(0).padStart(7)}`);

    // 3. Our per-step timings (medians over the rounds) and the share of the process outside autoSegment.
    const stepNames = Object.keys(reports[0].result.timingsMs);
    const stepMedianMs: Record<string, number> = {};
    for (const k of stepNames) stepMedianMs[k] = median(reports.map((x) => x.result.timingsMs[k] ?? 0));
    const autoSegmentMedianMs = median(reports.map((x) => x.autoSegmentMs));
    console.log(`\nours, per step (median of ${rounds} rounds, ms; the write_* run in the background, overlapping the others):`);
    for (const k of stepNames) console.log(`  ${k.padEnd(18)} ${String(Math.round(stepMedianMs[k])).padStart(6)}`);
    console.log(`  ${'autoSegment total'.padEnd(18)} ${String(Math.round(autoSegmentMedianMs)).padStart(6)}`);
    console.log(`  ${'process wall'.padEnd(18)} ${String(Math.round(med.ot * 1000)).padStart(6)}  (node startup, module loading and exit included)`);
    const rois = reports[0].result.rois;
    console.log(`ours ROIs: ${rois.map((x) => `${x.name} ${x.volumeCm3} cm3 (${x.contours} contours)`).join(', ')}`);
    console.log(`plastimatch BODY: ${pmBody.cm3 === null ? 'volume not read (unexpected .mha form)' : `${pmBody.cm3} cm3`}`);

    // 4. Ratios of the medians, judged as printed (2 decimals).
    const timeRatio = Math.round((med.ot / med.pt) * 100) / 100;
    const memoryRatio = Math.round((med.om / med.pm) * 100) / 100;
    const timePass = timeRatio <= TIME_RATIO_TARGET;
    const memoryPass = memoryRatio <= MEMORY_RATIO_TARGET;
    console.log(`\nsegment time ratio (ours/plastimatch): ${timeRatio.toFixed(2)} (target <= ${TIME_RATIO_TARGET}) ${timePass ? 'PASS' : 'MISS'}`);
    console.log(`segment peak memory ratio (ours/plastimatch): ${memoryRatio.toFixed(2)} (target <= ${MEMORY_RATIO_TARGET}) ${memoryPass ? 'PASS' : 'MISS'}`);

    const round3 = (x: number) => Math.round(x * 1000) / 1000;
    const round1 = (x: number) => Math.round(x * 10) / 10;
    return {
      rounds,
      slices: SLICES,
      memoryMethod,
      oursRoundsS: times.ours.map(round3),
      plastimatchRoundsS: times.plastimatch.map(round3),
      oursMedianS: round3(med.ot),
      plastimatchMedianS: round3(med.pt),
      timeRatio,
      timeRatioTarget: TIME_RATIO_TARGET,
      timeRatioPass: timePass,
      oursPeakRoundsMb: peaks.ours.map(round1),
      plastimatchPeakRoundsMb: peaks.plastimatch.map(round1),
      oursPeakMedianMb: round1(med.om),
      plastimatchPeakMedianMb: round1(med.pm),
      memoryRatio,
      memoryRatioTarget: MEMORY_RATIO_TARGET,
      memoryRatioPass: memoryPass,
      oursSelfVmHwmRoundsMb: reports.map((x) => round1(x.vmHwmKb / 1024)),
      oursAutoSegmentMedianMs: Math.round(autoSegmentMedianMs),
      oursStepMedianMs: Object.fromEntries(Object.entries(stepMedianMs).map(([k, v]) => [k, Math.round(v)])),
      oursRois: rois,
      plastimatchBodyCm3: pmBody.cm3,
    };
  } finally {
    await cleanup();
    activeCleanup = undefined;
  }
}
