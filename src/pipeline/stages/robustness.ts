/**
 * The robustness stage of a course: the radiomics features of every ROI matching
 * `apply_to_structures` under each perturbation of the grid (noise → translation → contour
 * randomisation → volume adaptation, reproducible from the course's seed). Writes the long table
 * radiomics_robustness_ct.csv; the cohort ICC / CoV / QCD summary is made by the batch command from
 * every course's rows. No matching ROI is reported, never a failure.
 */
import path from 'node:path';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import type { StageContext } from '../job-host.js';
import type { Config } from '../../config/schema.js';
import { structureSources } from '../structure-sources.js';
import { readCtSeries } from '../../dicom/ct-series-reader.js';
import { readRtStruct } from '../../rt/rtstruct.js';
import { contoursToMask } from '../../geometry/contours.js';
import { loadPyradiomicsParams } from '../../radiomics/params.js';
import { extractPyradiomics } from '../../radiomics/pyradiomics.js';
import { applyPerturbation, perturbationCount, perturbations } from '../../robustness/perturb.js';
import { toCsv } from '../../io/csv.js';
import type { Cell } from '../../io/table.js';
import { writeFileAtomic } from '../../store/durable-fs.js';
import { updateCaseMetadata } from '../course.js';
import { matchesAny } from './radiomics.js';

export interface RobustnessInput {
  courseDir: string;
  patientId: string;
  courseId: string;
  paramsFile: string;
  settings: Config['radiomics_robustness']['segmentation_perturbation'];
}

/** Long rows [structure, source, perturbation id, feature, value]. */
export type RobustnessResult = { skipped: string } | { rows: [string, string, string, string, number][]; rois: number; perturbations: number; notes: string[] };

export const ROBUSTNESS_LONG_COLUMNS = ['PatientID', 'CourseID', 'structure', 'segmentation_source', 'perturbation_id', 'feature_name', 'value'];

export async function robustnessStage(input: RobustnessInput, ctx: StageContext): Promise<RobustnessResult> {
  const ctDir = path.join(input.courseDir, 'DICOM', 'CT');
  if (!existsSync(ctDir)) return { skipped: 'no CT in the course' };
  const patterns = input.settings.apply_to_structures;
  const ct = await readCtSeries((await fsp.readdir(ctDir)).filter((f) => f.endsWith('.dcm')).sort().map((f) => path.join(ctDir, f)));
  const params = await loadPyradiomicsParams(input.paramsFile);
  const image = { dims: ct.grid.dims as [number, number, number], data: Float64Array.from(ct.data) };
  const spacing = ct.grid.spacingMm as [number, number, number];
  const rois: { source: string; name: string; mask: Uint8Array }[] = [];
  for (const { source, file } of await structureSources(input.courseDir)) {
    for (const roi of readRtStruct(await fsp.readFile(file)).rois) {
      if (!matchesAny(roi.name, patterns)) continue;
      const closed = roi.contours.filter((c) => c.geometricType === 'CLOSED_PLANAR');
      if (closed.length > 0) rois.push({ source, name: roi.name, mask: contoursToMask(ct.grid, closed.map((c) => ({ points: c.points }))).data });
    }
  }
  if (rois.length === 0) {
    const reason = `no ROI matches radiomics_robustness.segmentation_perturbation.apply_to_structures (${patterns.join(', ') || 'empty'})`;
    ctx.log.warn(reason);
    await updateCaseMetadata(input.courseDir, { robustness: { skipped: true, reason } });
    return { skipped: reason };
  }
  // Reproducible per course: the same course gives the same perturbed masks and images.
  const seed = createHash('sha256').update(`${input.patientId}/${input.courseId}`).digest().readUInt32LE(0);
  const count = perturbationCount(input.settings);
  const rows: [string, string, string, string, number][] = [];
  const notes: string[] = [];
  const started = Date.now();
  for (const roi of rois) {
    for (const p of perturbations(input.settings, seed)) {
      if (ctx.signal.aborted) throw new Error('cancelled');
      const perturbed = applyPerturbation(image, { dims: image.dims, data: roi.mask }, spacing, p);
      for (const n of perturbed.notes) if (n.code === 'translation-clipped') notes.push(`${roi.name} (${roi.source}) ${p.id}: translation clipped at the image edge`);
      if (perturbed.voxels === 0) {
        notes.push(`${roi.name} (${roi.source}) ${p.id}: empty after perturbation, left out`);
        continue;
      }
      const features = extractPyradiomics({ dims: image.dims, spacingMm: spacing, data: perturbed.image }, { dims: image.dims, spacingMm: spacing, data: perturbed.mask }, params, { label: 1 });
      for (const [feature, value] of features) if (!feature.startsWith('diagnostics_')) rows.push([roi.name, roi.source, p.id, feature, value]);
    }
    ctx.log.info({ roi: roi.name, source: roi.source, perturbations: count, elapsedS: Math.round((Date.now() - started) / 1000) }, `robustness: ${roi.name} (${roi.source}) done`);
  }
  const table = { columns: ROBUSTNESS_LONG_COLUMNS, rows: rows.map((r): Cell[] => [input.patientId, input.courseId, ...r]) };
  await writeFileAtomic(path.join(input.courseDir, 'radiomics_robustness_ct.csv'), toCsv(table));
  await updateCaseMetadata(input.courseDir, { robustness: { skipped: false, rois: rois.length, perturbations: count, values: rows.length, notes: notes.slice(0, 100) } });
  return { rows, rois: rois.length, perturbations: count, notes };
}
