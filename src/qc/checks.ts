/**
 * The QC checks of a course, each PASS, WARN or FAIL with what was found: frame of reference
 * consistency (CT, structure sets, doses), ROIs cropped by the image edge, empty or tiny ROIs, and
 * how much of each ROI the dose grid covers (from the DVH stage's curves). Pure: the stage gathers
 * the facts, these functions judge them.
 */
import type { Mask, Vec3 } from '../geometry/types.js';
import { PARTIAL_SUFFIX } from '../dvh/dvh.js';

export type CheckStatus = 'PASS' | 'WARN' | 'FAIL';
const RANK: Record<CheckStatus, number> = { PASS: 0, WARN: 1, FAIL: 2 };

export interface QcCheck {
  /** Which check: frame_of_reference, roi_cropped, roi_size, dose_coverage. */
  check: string;
  /** What it is about: a file, an ROI ("source/name"), or "all ROIs". */
  subject: string;
  status: CheckStatus;
  detail: string;
}

export function worstStatus(checks: readonly Pick<QcCheck, 'status'>[]): CheckStatus {
  return checks.reduce<CheckStatus>((w, c) => (RANK[c.status] > RANK[w] ? c.status : w), 'PASS');
}

/** Which borders of the grid a mask touches: its first/last slice, or the in-plane border. */
export interface EdgeContact {
  firstSlice: boolean;
  lastSlice: boolean;
  inPlaneBorder: boolean;
}

export interface MaskFacts {
  voxels: number;
  volumeCm3: number;
  /** Mean voxel index (i, j, k) of the mask, null when empty. */
  centroidVoxel: Vec3 | null;
  edge: EdgeContact;
}

/** Size, centroid and border contact of a mask, in one pass. */
export function measureMask(m: Mask): MaskFacts {
  const [nx, ny, nz] = m.grid.dims;
  let voxels = 0;
  let si = 0;
  let sj = 0;
  let sk = 0;
  const edge: EdgeContact = { firstSlice: false, lastSlice: false, inPlaneBorder: false };
  for (let k = 0, p = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, p++) {
        if (!m.data[p]) continue;
        voxels++;
        si += i;
        sj += j;
        sk += k;
        if (k === 0) edge.firstSlice = true;
        if (k === nz - 1) edge.lastSlice = true;
        if (i === 0 || j === 0 || i === nx - 1 || j === ny - 1) edge.inPlaneBorder = true;
      }
    }
  }
  const [sx, sy, sz] = m.grid.spacingMm;
  return { voxels, volumeCm3: (voxels * sx * sy * sz) / 1000, centroidVoxel: voxels > 0 ? [si / voxels, sj / voxels, sk / voxels] : null, edge };
}

export interface RoiFacts extends MaskFacts {
  source: string;
  name: string;
}

const roiLabel = (r: Pick<RoiFacts, 'source' | 'name'>) => `${r.source}/${r.name}`;

/** One PASS row when nothing was found, else the findings. */
function orPass(check: string, found: QcCheck[], subject: string, detail: string): QcCheck[] {
  return found.length > 0 ? found : [{ check, subject, status: 'PASS', detail }];
}

export interface FrameFacts {
  ct: { frameOfReferenceUid: string | null } | null;
  structureSets: { source: string; file: string; frameOfReferenceUid: string }[];
  doses: { file: string; frameOfReferenceUid: string | null }[];
}

/** Every structure set and dose must be in the CT's frame of reference: else contours or dose are misplaced. */
export function checkFrameOfReference(f: FrameFacts): QcCheck[] {
  const check = 'frame_of_reference';
  const ctFor = f.ct?.frameOfReferenceUid ?? null;
  if (!ctFor) return [{ check, subject: 'CT', status: 'FAIL', detail: f.ct ? 'the CT has no Frame of Reference UID' : 'the course has no CT' }];
  const found: QcCheck[] = [];
  for (const s of f.structureSets) {
    if (!s.frameOfReferenceUid) found.push({ check, subject: `${s.source} ${s.file}`, status: 'WARN', detail: 'the structure set names no referenced frame of reference' });
    else if (s.frameOfReferenceUid !== ctFor) found.push({ check, subject: `${s.source} ${s.file}`, status: 'FAIL', detail: `structure set frame of reference ${s.frameOfReferenceUid} differs from the CT's ${ctFor}` });
  }
  for (const d of f.doses) {
    if (d.frameOfReferenceUid !== ctFor) found.push({ check, subject: `RTDOSE ${d.file}`, status: 'FAIL', detail: `dose frame of reference ${d.frameOfReferenceUid ?? '(none)'} differs from the CT's ${ctFor}` });
  }
  return orPass(check, found, 'CT, structure sets, doses', `all ${f.structureSets.length} structure set(s) and ${f.doses.length} dose(s) share the CT's frame of reference ${ctFor}`);
}

/** An ROI reaching the first/last slice or the in-plane border probably continues outside the image. */
export function checkRoiCropping(rois: readonly RoiFacts[]): QcCheck[] {
  const found: QcCheck[] = [];
  for (const r of rois) {
    const where = [r.edge.firstSlice && 'the first slice', r.edge.lastSlice && 'the last slice', r.edge.inPlaneBorder && 'the in-plane image border'].filter(Boolean);
    if (where.length > 0) found.push({ check: 'roi_cropped', subject: roiLabel(r), status: 'WARN', detail: `touches ${where.join(' and ')}: it may be cut off by the scan range or field of view` });
  }
  return orPass('roi_cropped', found, `all ${rois.length} ROIs`, 'no ROI touches the image edge');
}

/** Empty ROIs (nothing inside on the CT grid) fail; ROIs under `minCm3` are flagged. */
export function checkRoiSizes(rois: readonly RoiFacts[], minCm3 = 1): QcCheck[] {
  const found: QcCheck[] = [];
  for (const r of rois) {
    if (r.voxels === 0) found.push({ check: 'roi_size', subject: roiLabel(r), status: 'FAIL', detail: 'empty: no CT voxel inside its contours (missing contours, or contours outside the CT)' });
    else if (r.volumeCm3 < minCm3) found.push({ check: 'roi_size', subject: roiLabel(r), status: 'WARN', detail: `tiny: ${r.volumeCm3.toFixed(3)} cm³ (< ${minCm3} cm³, ${r.voxels} voxels)` });
  }
  return orPass('roi_size', found, `all ${rois.length} ROIs`, `every ROI has at least ${minCm3} cm³`);
}

/** One curve of dvh_curves.json (the DVH stage's output). */
export interface DvhCurveFacts {
  roi: string;
  source: string;
  cumulativeCm3: readonly number[];
}

/**
 * Dose grid coverage per ROI: the DVH stage names an ROI partly outside the dose grid `<name>__partial`;
 * one with no dose sample inside has an all-zero curve. `curves` null: the course has a dose but no DVH yet.
 */
export function checkDoseCoverage(rois: readonly RoiFacts[], curves: readonly DvhCurveFacts[] | null): QcCheck[] {
  const check = 'dose_coverage';
  if (curves === null) return [{ check, subject: 'dvh_curves.json', status: 'WARN', detail: 'the course has a dose but no dvh_curves.json: run the dvh stage' }];
  const found: QcCheck[] = [];
  for (const r of rois.filter((x) => x.voxels > 0)) {
    const whole = curves.find((c) => c.source === r.source && c.roi === r.name);
    const partial = curves.find((c) => c.source === r.source && c.roi === r.name + PARTIAL_SUFFIX);
    if (whole) continue;
    if (!partial) found.push({ check, subject: roiLabel(r), status: 'WARN', detail: 'no DVH for this ROI (its structure set was not used by the dvh stage, or it has no closed contour)' });
    else if (!(partial.cumulativeCm3[0] > 0)) found.push({ check, subject: roiLabel(r), status: 'FAIL', detail: 'entirely outside the dose grid' });
    else found.push({ check, subject: roiLabel(r), status: 'WARN', detail: 'partly outside the dose grid: its DVH describes only the part inside' });
  }
  return orPass(check, found, `all ${rois.filter((x) => x.voxels > 0).length} non-empty ROIs`, 'every ROI lies inside the dose grid');
}
