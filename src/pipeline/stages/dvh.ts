/**
 * The DVH stage of a course: the course's dose (its plan/dose links decided from the objects under
 * DICOM/, summed as organize's recipe says), and a cumulative DVH with the contract's metrics for
 * every ROI of every structure source: the planning RTSTRUCT(s), RS_auto.dcm and RS_custom.dcm.
 * Writes dvh_metrics.csv, dvh_metrics.xlsx and dvh_curves.json. A course whose dose is ambiguous
 * is skipped with the reason, never guessed.
 */
import path from 'node:path';
import { existsSync, promises as fsp } from 'node:fs';
import type { StageContext } from '../job-host.js';
import { scanTree } from '../../organize/scan.js';
import { groupCourses } from '../../organize/courses.js';
import { loadCourseDose } from '../../organize/course-dose.js';
import { readRtStruct } from '../../rt/rtstruct.js';
import { computeDvhs, dvhOutputName, prepareDoseField, type Dvh } from '../../dvh/dvh.js';
import { dvhMetricColumns, dvhMetrics } from '../../dvh/metrics.js';
import { toCsv } from '../../io/csv.js';
import { toXlsx } from '../../io/xlsx.js';
import type { Cell, Table } from '../../io/table.js';
import { writeFileAtomic } from '../../store/durable-fs.js';
import { updateCaseMetadata } from '../course.js';
import { structureSources } from '../structure-sources.js';

export interface DvhInput {
  courseDir: string;
  patientId: string;
  courseId: string;
}

export type DvhResult = { skipped: string } | { table: Table; sources: { source: string; file: string; rois: number; note?: string }[]; prescriptionGy: number | null; dose: string };

export const DVH_ID_COLUMNS = ['PatientID', 'CourseID', 'ROI_Name', 'ROI_Number', 'Segmentation_Source'];

export async function dvhStage(input: DvhInput, ctx: StageContext): Promise<DvhResult> {
  const skip = async (reason: string): Promise<DvhResult> => {
    ctx.log.warn({ reason }, `DVH skipped for ${input.patientId}/${input.courseId}: ${reason}`);
    await updateCaseMetadata(input.courseDir, { dvh: { skipped: true, reason } });
    return { skipped: reason };
  };
  const dicomDir = path.join(input.courseDir, 'DICOM');
  if (!existsSync(dicomDir)) return skip('the course has no DICOM folder (run organize first)');
  const scanned = await scanTree(dicomDir);
  const grouped = groupCourses(scanned.instances);
  const withDose = grouped.courses.filter((c) => c.doses.length > 0);
  if (withDose.length === 0) return skip('no RTDOSE in the course');
  if (withDose.length > 1) return skip(`the course folder holds ${withDose.length} separate plan/dose groups; which dose belongs to the structures is ambiguous`);
  const course = withDose[0];
  if (course.doseRecipe.kind === 'skipped') return skip(course.doseRecipe.skipped);
  const dose = await loadCourseDose(course.doseRecipe);
  const field = prepareDoseField(dose);
  const rxGy = course.prescriptionGy;
  const columns = [...DVH_ID_COLUMNS, ...dvhMetricColumns(rxGy !== null)];
  const rows: Cell[][] = [];
  const curves: Record<string, unknown>[] = [];
  const sources: Exclude<DvhResult, { skipped: string }>['sources'] = [];
  for (const { source, file } of await structureSources(input.courseDir)) {
    const rs = readRtStruct(await fsp.readFile(file));
    if (rs.referencedFrameOfReferenceUid && rs.referencedFrameOfReferenceUid !== dose.frameOfReferenceUid) {
      const note = `frame of reference ${rs.referencedFrameOfReferenceUid} differs from the dose's ${dose.frameOfReferenceUid}: not used`;
      ctx.log.warn({ source, file }, `${source}: ${note}`);
      sources.push({ source, file, rois: 0, note });
      continue;
    }
    const rois = rs.rois
      .map((r) => ({ number: r.number, name: r.name, contours: r.contours.filter((c) => c.geometricType === 'CLOSED_PLANAR' && c.points.length >= 9).map((c) => ({ points: c.points })) }))
      .filter((r) => r.contours.length > 0);
    const dvhs: Dvh[] = computeDvhs(field, rois);
    for (const d of dvhs) {
      const m = dvhMetrics(d, { prescriptionGy: rxGy ?? undefined });
      const name = dvhOutputName(d);
      rows.push([input.patientId, input.courseId, name, d.roiNumber, source, ...columns.slice(DVH_ID_COLUMNS.length).map((c) => m[c])]);
      curves.push({ roi: name, roiNumber: d.roiNumber, source, binWidthGy: d.binWidthGy, volumeCm3: d.volumeCm3, cumulativeCm3: Array.from(d.cumulativeCm3, (v) => Math.round(v * 1e4) / 1e4) });
    }
    sources.push({ source, file, rois: dvhs.length });
  }
  if (sources.length === 0) return skip('no structure set in the course (no planning RTSTRUCT, RS_auto or RS_custom)');
  const table: Table = { columns, rows };
  await writeFileAtomic(path.join(input.courseDir, 'dvh_metrics.csv'), toCsv(table));
  await writeFileAtomic(path.join(input.courseDir, 'dvh_metrics.xlsx'), toXlsx([{ name: 'dvh_metrics', table }]));
  await writeFileAtomic(path.join(input.courseDir, 'dvh_curves.json'), JSON.stringify({ patientId: input.patientId, courseId: input.courseId, prescriptionGy: rxGy, curves }));
  const doseNote = `${course.doseRecipe.kind} of ${course.doseRecipe.files.length} RTDOSE`;
  await updateCaseMetadata(input.courseDir, { dvh: { skipped: false, dose: doseNote, prescriptionGy: rxGy, rows: rows.length, sources: sources.map((s) => ({ source: s.source, rois: s.rois, note: s.note })) } });
  ctx.log.info({ rows: rows.length, dose: doseNote }, `DVH written for ${input.patientId}/${input.courseId}`);
  return { table, sources, prescriptionGy: rxGy, dose: doseNote };
}
