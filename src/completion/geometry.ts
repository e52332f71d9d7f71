/**
 * Slice-geometry continuity of one image series (pure: facts in, verdict out). A CT series that
 * arrives in pieces shows it in its geometry: a hole in the slice positions along the normal of
 * ImageOrientationPatient, or slices that do not belong together (another frame of reference,
 * another matrix). Completion holds a study whose CT series is not continuous.
 */

export interface SliceGeometry {
  sopInstanceUid: string;
  imagePositionPatient: readonly number[] | null;
  imageOrientationPatient: readonly number[] | null;
  rows: number | null;
  columns: number | null;
  pixelSpacing: readonly number[] | null;
  frameOfReferenceUid: string | null;
}

export type GeometryVerdict =
  /** One stack, uniform spacing, no holes. */
  | { status: 'continuous'; slices: number; spacingMm: number; extentMm: [number, number] }
  /** Positions are uniform except for holes: `missing` slices would fill them. */
  | { status: 'gap'; slices: number; spacingMm: number; missing: number; gaps: { fromMm: number; toMm: number; missingSlices: number }[] }
  /** The slices do not form one regular stack (and waiting will not fix that by itself). */
  | { status: 'inconsistent'; slices: number; problem: string }
  /** Not enough facts to judge (a single slice, no position or orientation): never holds a study. */
  | { status: 'unknown'; slices: number; why: string };

/** Positions closer than this (mm) along the normal are the same plane. */
const SAME_PLANE_MM = 0.01;
/** Relative tolerance of a step against the series spacing (reconstructions round positions). */
const STEP_TOLERANCE = 0.05;
/** Orientation cosines and pixel spacings compared with this absolute tolerance. */
const COSINE_TOLERANCE = 1e-4;
const SPACING_TOLERANCE_MM = 1e-3;

export function checkSeriesGeometry(slices: readonly SliceGeometry[]): GeometryVerdict {
  const n = slices.length;
  if (n < 2) return { status: 'unknown', slices: n, why: 'fewer than 2 slices' };
  const noPlane = slices.filter((s) => !s.imagePositionPatient || !s.imageOrientationPatient);
  if (noPlane.length > 0) return { status: 'unknown', slices: n, why: `${noPlane.length} slice(s) without ImagePositionPatient/ImageOrientationPatient` };

  const frames = new Set(slices.map((s) => s.frameOfReferenceUid ?? ''));
  if (frames.size > 1) return { status: 'inconsistent', slices: n, problem: `${frames.size} frames of reference in one series` };
  const first = slices[0];
  for (const s of slices) {
    if (s.rows !== first.rows || s.columns !== first.columns) {
      return { status: 'inconsistent', slices: n, problem: `matrix ${s.rows}x${s.columns} of ${s.sopInstanceUid} differs from ${first.rows}x${first.columns}` };
    }
    if (!sameNumbers(s.pixelSpacing, first.pixelSpacing, SPACING_TOLERANCE_MM)) {
      return { status: 'inconsistent', slices: n, problem: `pixel spacing ${fmtList(s.pixelSpacing)} of ${s.sopInstanceUid} differs from ${fmtList(first.pixelSpacing)}` };
    }
    if (!sameNumbers(s.imageOrientationPatient, first.imageOrientationPatient, COSINE_TOLERANCE)) {
      return { status: 'inconsistent', slices: n, problem: `orientation of ${s.sopInstanceUid} differs from the series' (${fmtList(first.imageOrientationPatient)})` };
    }
  }
  const iop = first.imageOrientationPatient!;
  const normal = cross([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]);
  const len = Math.hypot(...normal);
  if (!(len > 0.5)) return { status: 'inconsistent', slices: n, problem: `ImageOrientationPatient ${fmtList(iop)} has parallel row and column directions` };
  const unit = normal.map((v) => v / len);
  const d = slices.map((s) => dot(s.imagePositionPatient!, unit)).sort((a, b) => a - b);
  const steps = d.slice(1).map((v, i) => v - d[i]);
  if (steps.some((s) => s < SAME_PLANE_MM)) {
    return { status: 'inconsistent', slices: n, problem: 'two slices at the same position (more than one stack or acquisition in the series)' };
  }
  const spacing = Math.min(...steps);
  const gaps: { fromMm: number; toMm: number; missingSlices: number }[] = [];
  for (let i = 0; i < steps.length; i++) {
    const ratio = steps[i] / spacing;
    const k = Math.round(ratio);
    if (Math.abs(ratio - k) > STEP_TOLERANCE * Math.max(1, k)) {
      return { status: 'inconsistent', slices: n, problem: `non-uniform spacing: a step of ${round(steps[i])} mm where the series spacing is ${round(spacing)} mm` };
    }
    if (k > 1) gaps.push({ fromMm: round(d[i]), toMm: round(d[i + 1]), missingSlices: k - 1 });
  }
  if (gaps.length > 0) return { status: 'gap', slices: n, spacingMm: round(spacing), missing: gaps.reduce((a, g) => a + g.missingSlices, 0), gaps };
  return { status: 'continuous', slices: n, spacingMm: round(spacing), extentMm: [round(d[0]), round(d[d.length - 1])] };
}

/** One line for logs and the timeline: "gap: 10 slices missing between 92.5 and 147.5 mm". */
export function describeGeometry(v: GeometryVerdict): string {
  switch (v.status) {
    case 'continuous':
      return `continuous: ${v.slices} slices every ${v.spacingMm} mm from ${v.extentMm[0]} to ${v.extentMm[1]} mm`;
    case 'gap':
      return `gap: ${v.gaps.map((g) => `${g.missingSlices} slice(s) missing between ${g.fromMm} and ${g.toMm} mm`).join('; ')} (spacing ${v.spacingMm} mm)`;
    case 'inconsistent':
      return `inconsistent: ${v.problem}`;
    case 'unknown':
      return `unknown: ${v.why}`;
  }
}

function sameNumbers(a: readonly number[] | null, b: readonly number[] | null, tol: number): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= tol);
}

function cross(a: number[], b: number[]): number[] {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function dot(a: readonly number[], b: readonly number[]): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function fmtList(v: readonly number[] | null): string {
  return v ? v.join('\\') : 'none';
}
