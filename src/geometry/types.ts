/**
 * Shared geometry types for the RT pipeline. Pure data: no I/O.
 *
 * Coordinates follow DICOM: patient LPS millimetres. A grid maps voxel indices (i = column,
 * j = row, k = slice) to patient space: p = origin + i*sx*row + j*sy*col + k*sz*normal, where
 * `direction` holds the three unit vectors [row (along i), column (along j), slice normal (along k)].
 */

/** Millimetres in patient (LPS) space. */
export type Mm = number & { readonly __unit?: 'mm' };
/** Voxel index units. */
export type Voxel = number & { readonly __unit?: 'voxel' };

export type Vec3 = [number, number, number];

export interface Grid {
  /** Number of voxels along i (columns), j (rows), k (slices). */
  dims: [number, number, number];
  /** Voxel spacing in mm along i, j, k. */
  spacingMm: Vec3;
  /** Patient position (LPS mm) of the centre of voxel (0,0,0). */
  originMm: Vec3;
  /** Unit vectors: direction[0] along i, direction[1] along j, direction[2] along k. */
  direction: [Vec3, Vec3, Vec3];
}

/** A scalar volume; data index = i + j*nx + k*nx*ny. CT values in HU. */
export interface Volume<T extends Int16Array | Float32Array | Uint16Array = Int16Array> {
  grid: Grid;
  data: T;
}

/** A binary mask on a grid (0 or 1 per voxel), same indexing as Volume. */
export interface Mask {
  grid: Grid;
  data: Uint8Array;
}

/** One closed planar contour in patient mm: x,y,z triplets; `sopInstanceUid` of the slice it lies on. */
export interface Contour {
  points: Float64Array;
  sopInstanceUid?: string;
}

export function voxelCount(g: Grid): number {
  return g.dims[0] * g.dims[1] * g.dims[2];
}

/** Patient position (mm) of the centre of voxel (i, j, k). */
export function voxelToPatient(g: Grid, i: number, j: number, k: number): Vec3 {
  const [r, c, n] = g.direction;
  const a = i * g.spacingMm[0];
  const b = j * g.spacingMm[1];
  const d = k * g.spacingMm[2];
  return [
    g.originMm[0] + a * r[0] + b * c[0] + d * n[0],
    g.originMm[1] + a * r[1] + b * c[1] + d * n[1],
    g.originMm[2] + a * r[2] + b * c[2] + d * n[2],
  ];
}

/** Continuous voxel coordinates (i, j, k) of a patient position (mm); direction is orthonormal. */
export function patientToVoxel(g: Grid, p: Vec3): Vec3 {
  const d: Vec3 = [p[0] - g.originMm[0], p[1] - g.originMm[1], p[2] - g.originMm[2]];
  const dot = (u: Vec3) => d[0] * u[0] + d[1] * u[1] + d[2] * u[2];
  return [dot(g.direction[0]) / g.spacingMm[0], dot(g.direction[1]) / g.spacingMm[1], dot(g.direction[2]) / g.spacingMm[2]];
}

/** Dice similarity of two masks on the same grid. */
export function dice(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let x = 0; x < a.length; x++) {
    sa += a[x];
    sb += b[x];
    inter += a[x] & b[x];
  }
  return sa + sb === 0 ? 1 : (2 * inter) / (sa + sb);
}

/** Voxels set in a mask and their volume in cm³ (rounded to 0.01). */
export function maskVolume(m: Mask): { voxels: number; volumeCm3: number } {
  let voxels = 0;
  for (let i = 0; i < m.data.length; i++) if (m.data[i]) voxels++;
  const [sx, sy, sz] = m.grid.spacingMm;
  return { voxels, volumeCm3: Math.round(((voxels * sx * sy * sz) / 1000) * 100) / 100 };
}
