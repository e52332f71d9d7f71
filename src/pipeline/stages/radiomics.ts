/**
 * The radiomics stage of a course: pyradiomics-compatible features of every ROI of every structure
 * source (Manual, RS_auto, RS_custom) on the CT, ROIs in parallel worker threads (the CT shared, not
 * copied), each with the time limit RTPIPELINE_RADIOMICS_TASK_TIMEOUT. Writes radiomics_ct.csv and
 * radiomics_ct.xlsx. A failing or timed-out ROI is recorded in the table's error column; the others go on.
 */
import path from 'node:path';
import { existsSync, promises as fsp } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { StageContext } from '../job-host.js';
import { structureSources } from '../structure-sources.js';
import { readCtSeries } from '../../dicom/ct-series-reader.js';
import { readRtStruct } from '../../rt/rtstruct.js';
import { contoursToMask } from '../../geometry/contours.js';
import { toCsv } from '../../io/csv.js';
import { toXlsx } from '../../io/xlsx.js';
import type { Cell, Table } from '../../io/table.js';
import { writeFileAtomic } from '../../store/durable-fs.js';
import { updateCaseMetadata } from '../course.js';
import { toolTimeouts } from '../../tools/timeouts.js';

export interface RadiomicsInput {
  courseDir: string;
  patientId: string;
  courseId: string;
  paramsFile: string;
  skipRois: string[];
  minVoxels: number;
  maxVoxels: number | null;
  /** ROIs computed at once (1 = sequential). */
  workers: number;
}

export type RadiomicsResult = { skipped: string } | { table: Table; rois: number; failed: number; skippedRois: { roi: string; source: string; reason: string }[] };

export const RADIOMICS_ID_COLUMNS = ['PatientID', 'CourseID', 'ROI_Name', 'Segmentation_Source'];

/** `skip_rois` entries are case-insensitive names or globs (`*`, `?`). */
export function matchesAny(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i').test(name));
}

interface RoiTask {
  source: string;
  roi: string;
  /** Contours, not the mask: a full-grid mask per ROI for 100 ROIs would take gigabytes. */
  contours: { points: Float64Array }[];
}

const ROI_JOB = new URL('../../../jobs/radiomics-roi.js', import.meta.url);

/** One ROI in a worker thread, killed at the time limit. */
function extractInWorker(image: { dims: [number, number, number]; spacingMm: [number, number, number]; shared: SharedArrayBuffer }, mask: Uint8Array, paramsFile: string, timeoutS: number): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(ROI_JOB, { workerData: { image, mask, paramsFile }, transferList: [mask.buffer as ArrayBuffer] });
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error(`timed out after ${timeoutS} s (RTPIPELINE_RADIOMICS_TASK_TIMEOUT)`));
    }, timeoutS * 1000);
    worker.once('message', (m: { ok: boolean; features?: [string, number][]; error?: string }) => {
      clearTimeout(timer);
      void worker.terminate();
      if (m.ok) resolve(new Map(m.features));
      else reject(new Error(m.error));
    });
    worker.once('error', (e) => {
      clearTimeout(timer);
      void worker.terminate();
      reject(e);
    });
    // A worker that dies without a word (out of memory, exit) must not leave the ROI waiting for ever.
    worker.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`radiomics worker exited with code ${code} before giving a result`));
    });
  });
}

export async function radiomicsStage(input: RadiomicsInput, ctx: StageContext): Promise<RadiomicsResult> {
  const ctDir = path.join(input.courseDir, 'DICOM', 'CT');
  if (!existsSync(ctDir)) return { skipped: 'no CT in the course' };
  const ct = await readCtSeries((await fsp.readdir(ctDir)).filter((f) => f.endsWith('.dcm')).sort().map((f) => path.join(ctDir, f)));
  const shared = new SharedArrayBuffer(ct.data.length * 8);
  new Float64Array(shared).set(ct.data);
  const image = { dims: ct.grid.dims as [number, number, number], spacingMm: ct.grid.spacingMm as [number, number, number], shared };

  const tasks: RoiTask[] = [];
  const skippedRois: { roi: string; source: string; reason: string }[] = [];
  for (const { source, file } of await structureSources(input.courseDir)) {
    const rs = readRtStruct(await fsp.readFile(file));
    for (const roi of rs.rois) {
      const skip = (reason: string) => skippedRois.push({ roi: roi.name, source, reason });
      if (matchesAny(roi.name, input.skipRois)) {
        skip('in radiomics.skip_rois');
        continue;
      }
      const closed = roi.contours.filter((c) => c.geometricType === 'CLOSED_PLANAR');
      if (closed.length === 0) {
        skip('no closed planar contours');
        continue;
      }
      const contours = closed.map((c) => ({ points: c.points }));
      const mask = contoursToMask(ct.grid, contours).data;
      let voxels = 0;
      for (let v = 0; v < mask.length; v++) voxels += mask[v];
      if (voxels < input.minVoxels) skip(`${voxels} voxels < radiomics.min_voxels ${input.minVoxels}`);
      else if (input.maxVoxels !== null && voxels > input.maxVoxels) skip(`${voxels} voxels > radiomics.max_voxels ${input.maxVoxels}`);
      else tasks.push({ source, roi: roi.name, contours });
    }
  }
  if (tasks.length === 0) return { skipped: skippedRois.length > 0 ? 'every ROI was skipped' : 'no structure set in the course' };

  const timeoutS = toolTimeouts().radiomicsTaskSeconds;
  const results: ({ features: Map<string, number> } | { error: string })[] = new Array(tasks.length);
  let next = 0;
  const runOne = async () => {
    for (let i = next++; i < tasks.length; i = next++) {
      const t = tasks[i];
      const started = Date.now();
      try {
        // The mask is made again here, one ROI at a time, and moved (not copied) to its worker.
        const mask = contoursToMask(ct.grid, t.contours).data;
        results[i] = { features: await extractInWorker(image, mask, input.paramsFile, timeoutS) };
        ctx.log.debug({ roi: t.roi, source: t.source, ms: Date.now() - started }, 'radiomics ROI done');
      } catch (e) {
        results[i] = { error: (e as Error).message };
        ctx.log.warn({ roi: t.roi, source: t.source, err: (e as Error).message }, `radiomics failed for ${t.roi} (${t.source})`);
      }
      if (ctx.signal.aborted) throw new Error('cancelled');
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(input.workers, tasks.length)) }, runOne));

  const featureNames: string[] = [];
  const seen = new Set<string>();
  for (const r of results) if ('features' in r) for (const k of r.features.keys()) if (!seen.has(k)) (seen.add(k), featureNames.push(k));
  const columns = [...RADIOMICS_ID_COLUMNS, ...featureNames, 'error'];
  const rows: Cell[][] = tasks.map((t, i) => {
    const r = results[i];
    const values = 'features' in r ? featureNames.map((f) => r.features.get(f)) : featureNames.map(() => undefined);
    return [input.patientId, input.courseId, t.roi, t.source, ...values, 'error' in r ? r.error : ''];
  });
  const table: Table = { columns, rows };
  await writeFileAtomic(path.join(input.courseDir, 'radiomics_ct.csv'), toCsv(table));
  await writeFileAtomic(path.join(input.courseDir, 'radiomics_ct.xlsx'), toXlsx([{ name: 'radiomics_ct', table }]));
  const failed = results.filter((r) => 'error' in r).length;
  await updateCaseMetadata(input.courseDir, { radiomics: { rois: tasks.length, failed, skipped: skippedRois, params: input.paramsFile } });
  ctx.log.info({ rois: tasks.length, failed, features: featureNames.length }, `radiomics written for ${input.patientId}/${input.courseId}`);
  return { table, rois: tasks.length, failed, skippedRois };
}
