/**
 * The QC stage of a course: reads the course folder (CT, structure sets, dose headers,
 * dvh_curves.json), judges it (src/qc/checks.ts), renders axial/coronal/sagittal snapshots with the
 * ROI outlines (src/qc/render.ts) and writes `qc_report.html` with `qc_<plane>.png` beside it.
 * Returns the checks and the worst status for the cohort table (_RESULTS/qc_reports.*).
 */
import path from 'node:path';
import { existsSync, promises as fsp } from 'node:fs';
import type { StageContext } from '../job-host.js';
import { readCtSeries, type CtSeries } from '../../dicom/ct-series-reader.js';
import { readPart10Header } from '../../dicom/header-file.js';
import { readRtStruct, type RtStructRoi } from '../../rt/rtstruct.js';
import { contoursToMask } from '../../geometry/contours.js';
import { writeFileAtomic } from '../../store/durable-fs.js';
import { updateCaseMetadata } from '../course.js';
import { structureSources } from '../structure-sources.js';
import { PARTIAL_SUFFIX } from '../../dvh/dvh.js';
import { checkDoseCoverage, checkFrameOfReference, checkRoiCropping, checkRoiSizes, measureMask, worstStatus, type CheckStatus, type DvhCurveFacts, type FrameFacts, type QcCheck, type RoiFacts } from '../../qc/checks.js';
import { DEFAULT_WINDOW, extractPlane, PLANES, planeIndex, renderSnapshot, snapshotCentre, type Overlay, type PlaneName, type Rgb } from '../../qc/render.js';
import { encodePng } from '../../qc/png.js';
import { dvhPlotSvg, type DvhPlotCurve } from '../../qc/dvh-plot.js';
import { qcReportHtml } from '../../qc/report.js';

export interface QcInput {
  courseDir: string;
  patientId: string;
  courseId: string;
}

export interface QcResult {
  status: CheckStatus;
  checks: QcCheck[];
  /** Absolute path of qc_report.html. */
  report: string;
  snapshots: string[];
}

export const QC_REPORT_FILE = 'qc_report.html';
const snapshotFile = (plane: PlaneName) => `qc_${plane}.png`;

/** Colours for ROIs without ROI Display Color. */
const PALETTE: Rgb[] = [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230]];

interface LoadedRoi {
  source: string;
  roi: RtStructRoi;
  color: Rgb;
}

async function dcmFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await fsp.readdir(dir)).filter((f) => f.endsWith('.dcm')).sort().map((f) => path.join(dir, f));
}

function roiMask(ct: CtSeries, roi: RtStructRoi) {
  return contoursToMask(ct.grid, roi.contours.filter((c) => c.geometricType === 'CLOSED_PLANAR'));
}

export async function qcStage(input: QcInput, ctx: StageContext): Promise<QcResult> {
  const { courseDir } = input;
  const rel = (f: string) => path.relative(courseDir, f);
  const notes: string[] = [];
  const ctFiles = await dcmFiles(path.join(courseDir, 'DICOM', 'CT'));
  const ct = ctFiles.length > 0 ? await readCtSeries(ctFiles) : null;
  const ctFor = ctFiles.length > 0 ? (await readPart10Header(ctFiles[0])).header.frameOfReferenceUid : null;
  if (!ct) notes.push('The course has no CT (DICOM/CT): ROIs could not be measured or shown.');

  const frames: FrameFacts = { ct: ct ? { frameOfReferenceUid: ctFor } : null, structureSets: [], doses: [] };
  const rois: LoadedRoi[] = [];
  for (const { source, file } of await structureSources(courseDir)) {
    const rs = readRtStruct(await fsp.readFile(file));
    frames.structureSets.push({ source, file: rel(file), frameOfReferenceUid: rs.referencedFrameOfReferenceUid });
    for (const roi of rs.rois) rois.push({ source, roi, color: roi.color ?? PALETTE[rois.length % PALETTE.length] });
  }
  const doseFiles = await dcmFiles(path.join(courseDir, 'DICOM', 'RTDOSE'));
  for (const f of doseFiles) frames.doses.push({ file: rel(f), frameOfReferenceUid: (await readPart10Header(f)).header.frameOfReferenceUid });

  // First pass: facts per ROI, one mask at a time (a mask is as large as the CT).
  const facts: (RoiFacts & { interpretedType: string })[] = [];
  if (ct) for (const r of rois) facts.push({ source: r.source, name: r.roi.name, interpretedType: r.roi.interpretedType, ...measureMask(roiMask(ct, r.roi)) });

  const curvesFile = path.join(courseDir, 'dvh_curves.json');
  const curves = existsSync(curvesFile) ? ((JSON.parse(await fsp.readFile(curvesFile, 'utf8')) as { curves: (DvhCurveFacts & { binWidthGy: number; volumeCm3: number })[] }).curves) : null;
  const checks: QcCheck[] = [...checkFrameOfReference(frames)];
  if (ct) checks.push(...checkRoiCropping(facts), ...checkRoiSizes(facts));
  if (doseFiles.length > 0) checks.push(...(ct ? checkDoseCoverage(facts, curves) : []));
  else notes.push('The course has no RTDOSE: dose grid coverage not checked.');
  const status = worstStatus(checks);

  const snapshots: { plane: PlaneName; file: string; caption: string; width: number; height: number }[] = [];
  if (ct) {
    const centre = snapshotCentre(ct.grid, facts);
    // Second pass: the three planes of each ROI drawn (one per name; the first source wins).
    const drawn = new Map<string, { color: Rgb; planes: Map<PlaneName, Overlay['plane']> }>();
    rois.forEach((r, n) => {
      if (drawn.has(r.roi.name) || facts[n].voxels === 0) return;
      const mask = roiMask(ct, r.roi);
      drawn.set(r.roi.name, { color: r.color, planes: new Map(PLANES.map((p) => [p, extractPlane(mask, p, planeIndex(p, centre))])) });
    });
    for (const plane of PLANES) {
      const index = planeIndex(plane, centre);
      const img = renderSnapshot(extractPlane(ct, plane, index), [...drawn.values()].map((d) => ({ color: d.color, plane: d.planes.get(plane)! })), DEFAULT_WINDOW);
      const file = snapshotFile(plane);
      await writeFileAtomic(path.join(courseDir, file), encodePng(img));
      snapshots.push({ plane, file, width: img.width, height: img.height, caption: `${plane}, ${plane === 'axial' ? 'slice' : plane === 'coronal' ? 'row' : 'column'} ${index} (window ${DEFAULT_WINDOW.lowHu}..${DEFAULT_WINDOW.highHu} HU)` });
    }
  }

  const colourOf = (source: string, roi: string) => rois.find((r) => r.source === source && r.roi.name === roi.replace(new RegExp(`${PARTIAL_SUFFIX}$`), ''))?.color ?? [0, 0, 0];
  const plotCurves: DvhPlotCurve[] = (curves ?? []).map((c) => ({ label: `${c.roi} (${c.source})`, color: colourOf(c.source, c.roi), binWidthGy: c.binWidthGy, volumeCm3: c.volumeCm3, cumulativeCm3: c.cumulativeCm3 }));
  const html = qcReportHtml({
    patientId: input.patientId,
    courseId: input.courseId,
    status,
    checks,
    snapshots,
    structures: facts.map((f, n) => ({ source: f.source, name: f.name, color: rois[n].color, voxels: f.voxels, volumeCm3: f.volumeCm3 })),
    dvh: plotCurves.length > 0 ? { svg: dvhPlotSvg(plotCurves) } : { missing: curves ? 'dvh_curves.json holds no curve' : 'the course has no dvh_curves.json (no dose, or the dvh stage has not run)' },
    notes,
    generatedAt: new Date().toISOString(),
  });
  const report = path.join(courseDir, QC_REPORT_FILE);
  await writeFileAtomic(report, html);
  const failed = checks.filter((c) => c.status === 'FAIL').map((c) => `${c.check}: ${c.subject}`);
  await updateCaseMetadata(courseDir, { qc: { status, report: QC_REPORT_FILE, failed, warnings: checks.filter((c) => c.status === 'WARN').length } });
  ctx.log.info({ status, checks: checks.length, failed: failed.length }, `QC report written for ${input.patientId}/${input.courseId}: ${status}`);
  return { status, checks, report, snapshots: snapshots.map((s) => path.join(courseDir, s.file)) };
}
