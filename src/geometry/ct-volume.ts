/**
 * Assembles CT slices into a volume on a Grid. Pure: no I/O.
 *
 * Slices are ordered by their position along the slice normal (row cosine x column cosine), never by
 * InstanceNumber, which scanners number in acquisition order (feet-first series count downwards).
 * Series that a regular grid cannot represent (gantry tilt, gaps, mixed geometry) are refused rather
 * than resampled: a silently wrong voxel position would move every contour and dose point.
 */
import type { Grid, Vec3, Volume } from './types.js';

export class CtSeriesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CtSeriesError';
  }
}

/** The geometry of one slice: everything needed to place it, nothing about its pixels. */
export interface CtSliceHeader {
  sopInstanceUid: string;
  /** Patient (LPS mm) position of the centre of the first transmitted pixel. */
  imagePositionPatient: Vec3;
  /** Row cosine (along a row, i.e. increasing column) then column cosine (down a column). */
  imageOrientationPatient: number[];
  /** DICOM order: [row spacing (between rows, along j), column spacing (between columns, along i)]. */
  pixelSpacing: [number, number];
  rows: number;
  columns: number;
  /** Only used for a single-slice series, which has no neighbour to measure the spacing from. */
  sliceThickness?: number;
}

export interface CtSliceInput extends CtSliceHeader {
  rescaleSlope: number;
  rescaleIntercept: number;
  /** Stored values, row-major; read as signed when pixelRepresentation is 1, whatever the array type. */
  pixels: Int16Array | Uint16Array;
  pixelRepresentation: 0 | 1;
}

export interface CtVolumePlan {
  grid: Grid;
  /** order[k] = index (in the input) of the slice that becomes slice k. */
  order: number[];
}

const ORIENTATION_TOLERANCE = 1e-4;
const SPACING_TOLERANCE_MM = 1e-4;

export function buildCtVolume(slices: CtSliceInput[]): Volume<Int16Array> {
  const { grid, order } = planCtVolume(slices);
  const sliceLength = grid.dims[0] * grid.dims[1];
  const data = new Int16Array(sliceLength * order.length);
  order.forEach((source, k) => rescaleInto(data, k * sliceLength, slices[source]));
  return { grid, data };
}

/** Validates the geometry of a series and works out its grid and slice order. */
export function planCtVolume(slices: readonly CtSliceHeader[]): CtVolumePlan {
  if (slices.length === 0) throw new CtSeriesError('CT series has no slices');
  const [rowCosine, columnCosine] = checkOrientations(slices);
  checkMatrices(slices);
  const normal = unit(cross(rowCosine, columnCosine));
  const along = slices.map((s) => dot(s.imagePositionPatient, normal));
  const order = along.map((_, index) => index).sort((a, b) => along[a] - along[b]);
  const sorted = order.map((index) => slices[index]);
  const first = sorted[0];
  checkNoTilt(sorted, normal);
  const sliceSpacing = sorted.length === 1 ? singleSliceThickness(first) : uniformSpacing(sorted, order.map((i) => along[i]));
  const [rowSpacing, columnSpacing] = first.pixelSpacing;
  const grid: Grid = {
    dims: [first.columns, first.rows, sorted.length],
    spacingMm: [columnSpacing, rowSpacing, sliceSpacing],
    originMm: [...first.imagePositionPatient],
    direction: [rowCosine, columnCosine, normal],
  };
  return { grid, order };
}

/** Writes one slice's HU (stored * slope + intercept, rounded, clamped to int16) at `offset`. The
 *  pixels may be a view of that very place in `out` (each value is read before it is written). */
export function rescaleInto(out: Int16Array, offset: number, slice: CtSliceInput): void {
  const n = slice.rows * slice.columns;
  if (slice.pixels.length < n) {
    throw new CtSeriesError(`slice ${slice.sopInstanceUid} has ${slice.pixels.length} pixels, expected ${slice.rows}x${slice.columns} = ${n}`);
  }
  const { buffer, byteOffset } = slice.pixels;
  const stored = slice.pixelRepresentation === 1 ? new Int16Array(buffer, byteOffset, n) : new Uint16Array(buffer, byteOffset, n);
  const { rescaleSlope: slope, rescaleIntercept: intercept } = slice;
  const target = out.subarray(offset, offset + n);
  if (slope === 1 && Number.isInteger(intercept)) {
    // The usual CT (slope 1, integer intercept): integer arithmetic, no rounding.
    for (let p = 0; p < n; p++) {
      const hu = stored[p] + intercept;
      target[p] = hu < -32768 ? -32768 : hu > 32767 ? 32767 : hu;
    }
    return;
  }
  for (let p = 0; p < n; p++) {
    const hu = Math.round(stored[p] * slope + intercept);
    target[p] = hu < -32768 ? -32768 : hu > 32767 ? 32767 : hu;
  }
}

function checkOrientations(slices: readonly CtSliceHeader[]): [Vec3, Vec3] {
  const reference = slices[0].imageOrientationPatient;
  if (reference.length !== 6 || !reference.every(Number.isFinite)) {
    throw new CtSeriesError(`slice ${slices[0].sopInstanceUid} has an invalid ImageOrientationPatient: ${reference.join('\\')}`);
  }
  const row = reference.slice(0, 3) as Vec3;
  const column = reference.slice(3, 6) as Vec3;
  const unitLength = (v: Vec3) => Math.abs(Math.hypot(...v) - 1) <= 1e-3;
  if (!unitLength(row) || !unitLength(column) || Math.abs(dot(row, column)) > ORIENTATION_TOLERANCE) {
    throw new CtSeriesError(`ImageOrientationPatient ${reference.join('\\')} is not two orthogonal unit vectors (slice ${slices[0].sopInstanceUid})`);
  }
  const differ = slices.filter(
    (s) => s.imageOrientationPatient.length !== 6 || s.imageOrientationPatient.some((v, i) => !(Math.abs(v - reference[i]) <= ORIENTATION_TOLERANCE)),
  );
  if (differ.length > 0) {
    throw new CtSeriesError(
      `CT series mixes image orientations: ${uids(differ)} differ from ${reference.join('\\')} (slice ${slices[0].sopInstanceUid})`,
    );
  }
  return [unit(row), unit(column)];
}

function checkMatrices(slices: readonly CtSliceHeader[]): void {
  const ref = slices[0];
  const differ = slices.filter(
    (s) =>
      s.rows !== ref.rows ||
      s.columns !== ref.columns ||
      !(Math.abs(s.pixelSpacing[0] - ref.pixelSpacing[0]) <= SPACING_TOLERANCE_MM) ||
      !(Math.abs(s.pixelSpacing[1] - ref.pixelSpacing[1]) <= SPACING_TOLERANCE_MM),
  );
  if (differ.length > 0) {
    throw new CtSeriesError(
      `CT series mixes image sizes or pixel spacings: ${uids(differ)} differ from ${ref.rows}x${ref.columns} at ${ref.pixelSpacing.join('\\')} mm (slice ${ref.sopInstanceUid})`,
    );
  }
  if (!(ref.rows > 0 && ref.columns > 0 && ref.pixelSpacing[0] > 0 && ref.pixelSpacing[1] > 0)) {
    throw new CtSeriesError(`slice ${ref.sopInstanceUid} has an invalid matrix ${ref.rows}x${ref.columns} or pixel spacing ${ref.pixelSpacing.join('\\')}`);
  }
}

/** Every slice must lie on the line through the first one along the normal; an offset growing with
 *  distance is gantry tilt, which would need a sheared grid. */
function checkNoTilt(sorted: readonly CtSliceHeader[], normal: Vec3): void {
  const origin = sorted[0].imagePositionPatient;
  const tolerance = Math.max(0.01, 0.01 * Math.min(...sorted[0].pixelSpacing));
  const offAxis = sorted.filter((s) => {
    const d = sub(s.imagePositionPatient, origin);
    const inPlane = sub(d, scale(normal, dot(d, normal)));
    return !(Math.hypot(...inPlane) <= tolerance);
  });
  if (offAxis.length > 0) {
    throw new CtSeriesError(
      `CT slice positions are not along the slice normal (gantry tilt or a sheared stack is not supported): ${uids(offAxis)} are offset in-plane from slice ${sorted[0].sopInstanceUid}`,
    );
  }
}

/** Spacing from the positions; refuses duplicates, gaps (missing slices) and uneven spacing. */
function uniformSpacing(sorted: readonly CtSliceHeader[], along: readonly number[]): number {
  const gaps = along.slice(1).map((d, k) => d - along[k]);
  const duplicates = gaps.flatMap((g, k) => (g < SPACING_TOLERANCE_MM * 10 ? [k] : []));
  if (duplicates.length > 0) {
    const pairs = duplicates.map((k) => `${sorted[k].sopInstanceUid} and ${sorted[k + 1].sopInstanceUid} at ${along[k].toFixed(3)} mm`);
    throw new CtSeriesError(`CT series has slices at the same position: ${pairs.join('; ')}`);
  }
  // The lower median: robust to a few gaps, and with two gaps of which one is doubled, picks the single one.
  const nominal = [...gaps].sort((a, b) => a - b)[Math.floor((gaps.length - 1) / 2)];
  const tolerance = Math.max(0.01, 0.01 * nominal);
  const bad = gaps.flatMap((g, k) => (Math.abs(g - nominal) > tolerance ? [k] : []));
  if (bad.length > 0) {
    const describe = (k: number) => {
      const ratio = gaps[k] / nominal;
      const missing = Math.round(ratio) - 1;
      const what = missing >= 1 && Math.abs(ratio - Math.round(ratio)) * nominal <= tolerance ? `${missing} missing slice(s)` : 'uneven spacing';
      return `${what}: ${gaps[k].toFixed(3)} mm between ${sorted[k].sopInstanceUid} and ${sorted[k + 1].sopInstanceUid}`;
    };
    throw new CtSeriesError(`CT slice spacing is not uniform (nominal ${nominal.toFixed(3)} mm): ${bad.map(describe).join('; ')}`);
  }
  return (along[along.length - 1] - along[0]) / (along.length - 1);
}

function singleSliceThickness(slice: CtSliceHeader): number {
  const t = slice.sliceThickness;
  if (t === undefined || !(t > 0)) {
    throw new CtSeriesError(`single-slice CT series needs a positive SliceThickness (slice ${slice.sopInstanceUid} has ${t ?? 'none'})`);
  }
  return t;
}

function uids(slices: readonly CtSliceHeader[]): string {
  return slices.map((s) => s.sopInstanceUid).join(', ');
}

function dot(a: readonly number[], b: readonly number[]): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function sub(a: Vec3, b: Vec3): Vec3 {
  return [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
}

function scale(a: Vec3, s: number): Vec3 {
  return [a[0] * s, a[1] * s, a[2] * s];
}

function unit(a: Vec3): Vec3 {
  return scale(a, 1 / Math.hypot(...a));
}
