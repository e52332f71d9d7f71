/**
 * Sums dose volumes (Gy) of one frame of reference: the beams of a plan, or the plans of a course.
 * Pure computation.
 *
 * - Same grid (dims, origin, spacing, direction within GRID_TOLERANCE_MM): voxel-wise addition.
 * - Different grids: every dose is resampled trilinearly onto one target grid and added. The target
 *   has the direction and spacing of the finest dose (smallest voxel volume; the first on a tie) and
 *   covers the union of all doses' voxel centres, so a boost grid smaller or larger than the primary's
 *   loses nothing. Each dose contributes 0 where the target lies more than half a voxel outside its own
 *   grid (a TPS dose grid covers the patient: outside it the TPS computed no dose); within that half
 *   voxel its edge value is used.
 * The caller checks that the frames of reference agree (dose-recipe.ts); nothing here registers.
 */
import { voxelCount, type Grid, type Vec3 } from '../geometry/types.js';

export interface DoseVolume {
  grid: Grid;
  /** Gy, index i + j*nx + k*nx*ny. */
  doseGy: Float32Array;
}

export interface DoseSum extends DoseVolume {
  /** 'added' when every dose shared one grid, 'resampled' otherwise. */
  method: 'added' | 'resampled';
}

/** Positions and spacings closer than this (mm) count as equal. */
export const GRID_TOLERANCE_MM = 1e-3;
const DIRECTION_TOLERANCE = 1e-6;

export function sumDoses(doses: readonly DoseVolume[]): DoseSum {
  if (doses.length === 0) throw new RangeError('sumDoses: no dose to sum');
  for (const [n, d] of doses.entries()) {
    if (d.doseGy.length !== voxelCount(d.grid)) throw new RangeError(`sumDoses: dose ${n} has ${d.doseGy.length} values, its grid ${d.grid.dims.join('x')} needs ${voxelCount(d.grid)}`);
  }
  const first = doses[0];
  if (doses.every((d) => sameGrid(d.grid, first.grid))) {
    const out = new Float32Array(first.doseGy.length);
    for (const d of doses) addInto(out, d.doseGy);
    return { grid: cloneGrid(first.grid), doseGy: out, method: 'added' };
  }
  const target = unionGrid(doses[finestIndex(doses.map((d) => d.grid))].grid, doses.map((d) => d.grid));
  const out = new Float32Array(voxelCount(target));
  for (const d of doses) addInto(out, sameGrid(d.grid, target) ? d.doseGy : resampleTrilinear(d, target));
  return { grid: target, doseGy: out, method: 'resampled' };
}

export function sameGrid(a: Grid, b: Grid): boolean {
  for (let n = 0; n < 3; n++) {
    if (a.dims[n] !== b.dims[n]) return false;
    if (Math.abs(a.spacingMm[n] - b.spacingMm[n]) > GRID_TOLERANCE_MM) return false;
    if (Math.abs(a.originMm[n] - b.originMm[n]) > GRID_TOLERANCE_MM) return false;
    for (let m = 0; m < 3; m++) if (Math.abs(a.direction[n][m] - b.direction[n][m]) > DIRECTION_TOLERANCE) return false;
  }
  return true;
}

/** Index of the grid with the smallest voxel volume (the first of equals). */
export function finestIndex(grids: readonly Grid[]): number {
  let best = 0;
  const volume = (g: Grid) => g.spacingMm[0] * g.spacingMm[1] * g.spacingMm[2];
  for (let n = 1; n < grids.length; n++) if (volume(grids[n]) < volume(grids[best]) - 1e-9) best = n;
  return best;
}

/**
 * A grid with `reference`'s direction and spacing, on its lattice, whose voxel centres cover every
 * voxel centre of `grids` (snapped to the lattice when within GRID_TOLERANCE_MM of a lattice point).
 */
export function unionGrid(reference: Grid, grids: readonly Grid[]): Grid {
  const lo: Vec3 = [Infinity, Infinity, Infinity];
  const hi: Vec3 = [-Infinity, -Infinity, -Infinity];
  for (const g of grids) {
    const { offset, coef } = indexTransform(reference, g);
    for (const ci of [0, g.dims[0] - 1]) {
      for (const cj of [0, g.dims[1] - 1]) {
        for (const ck of [0, g.dims[2] - 1]) {
          for (let a = 0; a < 3; a++) {
            const s = offset[a] + coef[a][0] * ci + coef[a][1] * cj + coef[a][2] * ck;
            if (s < lo[a]) lo[a] = s;
            if (s > hi[a]) hi[a] = s;
          }
        }
      }
    }
  }
  const snap = (x: number, a: number, round: (v: number) => number) => {
    const nearest = Math.round(x);
    return Math.abs(x - nearest) * reference.spacingMm[a] <= GRID_TOLERANCE_MM ? nearest : round(x);
  };
  const first = [0, 1, 2].map((a) => snap(lo[a], a, Math.floor)) as Vec3;
  const last = [0, 1, 2].map((a) => snap(hi[a], a, Math.ceil)) as Vec3;
  const [r, c, n] = reference.direction;
  const shift = (m: number) => first[0] * reference.spacingMm[0] * r[m] + first[1] * reference.spacingMm[1] * c[m] + first[2] * reference.spacingMm[2] * n[m];
  return {
    dims: [last[0] - first[0] + 1, last[1] - first[1] + 1, last[2] - first[2] + 1],
    spacingMm: [...reference.spacingMm] as Vec3,
    originMm: [reference.originMm[0] + shift(0), reference.originMm[1] + shift(1), reference.originMm[2] + shift(2)],
    direction: reference.direction.map((v) => [...v]) as [Vec3, Vec3, Vec3],
  };
}

/**
 * `source` sampled at every voxel centre of `target`: trilinear inside the source's voxel centres,
 * the edge value within half a voxel outside them, 0 further out.
 */
export function resampleTrilinear(source: DoseVolume, target: Grid): Float32Array {
  const [nx, ny, nz] = source.grid.dims;
  const src = source.doseGy;
  const out = new Float32Array(voxelCount(target));
  const { offset, coef } = indexTransform(source.grid, target);
  const [tx, ty, tz] = target.dims;
  const sxy = nx * ny;
  let o = 0;
  for (let k = 0; k < tz; k++) {
    for (let j = 0; j < ty; j++) {
      // Continuous source index of target (0, j, k); each step in i adds coef[.][0].
      let si = offset[0] + coef[0][1] * j + coef[0][2] * k;
      let sj = offset[1] + coef[1][1] * j + coef[1][2] * k;
      let sk = offset[2] + coef[2][1] * j + coef[2][2] * k;
      for (let i = 0; i < tx; i++, o++, si += coef[0][0], sj += coef[1][0], sk += coef[2][0]) {
        if (si < -0.5 || sj < -0.5 || sk < -0.5 || si > nx - 0.5 || sj > ny - 0.5 || sk > nz - 0.5) continue;
        const x = si < 0 ? 0 : si > nx - 1 ? nx - 1 : si;
        const y = sj < 0 ? 0 : sj > ny - 1 ? ny - 1 : sj;
        const z = sk < 0 ? 0 : sk > nz - 1 ? nz - 1 : sk;
        const x0 = Math.min(Math.floor(x), nx - 2 < 0 ? 0 : nx - 2);
        const y0 = Math.min(Math.floor(y), ny - 2 < 0 ? 0 : ny - 2);
        const z0 = Math.min(Math.floor(z), nz - 2 < 0 ? 0 : nz - 2);
        const fx = x - x0;
        const fy = y - y0;
        const fz = z - z0;
        // A single-voxel axis has no neighbour: its step is 0 and its weight irrelevant.
        const dx = nx > 1 ? 1 : 0;
        const dy = ny > 1 ? nx : 0;
        const dz = nz > 1 ? sxy : 0;
        const p = x0 + y0 * nx + z0 * sxy;
        const c00 = src[p] + (src[p + dx] - src[p]) * fx;
        const c10 = src[p + dy] + (src[p + dy + dx] - src[p + dy]) * fx;
        const c01 = src[p + dz] + (src[p + dz + dx] - src[p + dz]) * fx;
        const c11 = src[p + dz + dy] + (src[p + dz + dy + dx] - src[p + dz + dy]) * fx;
        const c0 = c00 + (c10 - c00) * fy;
        const c1 = c01 + (c11 - c01) * fy;
        out[o] = c0 + (c1 - c0) * fz;
      }
    }
  }
  return out;
}

/** s = offset + coef·t: the continuous `source` index of `target` voxel index t. */
function indexTransform(source: Grid, target: Grid): { offset: Vec3; coef: [Vec3, Vec3, Vec3] } {
  // Row a of the patient -> source-index map is direction[a] / spacing[a] (direction is orthonormal).
  const toSource = (a: number, v: Vec3) => (v[0] * source.direction[a][0] + v[1] * source.direction[a][1] + v[2] * source.direction[a][2]) / source.spacingMm[a];
  const delta: Vec3 = [target.originMm[0] - source.originMm[0], target.originMm[1] - source.originMm[1], target.originMm[2] - source.originMm[2]];
  const step = (b: number): Vec3 => [target.direction[b][0] * target.spacingMm[b], target.direction[b][1] * target.spacingMm[b], target.direction[b][2] * target.spacingMm[b]];
  const steps = [step(0), step(1), step(2)];
  const offset: Vec3 = [toSource(0, delta), toSource(1, delta), toSource(2, delta)];
  const coef = [0, 1, 2].map((a) => [toSource(a, steps[0]), toSource(a, steps[1]), toSource(a, steps[2])] as Vec3) as [Vec3, Vec3, Vec3];
  return { offset, coef };
}

function addInto(out: Float32Array, add: Float32Array): void {
  for (let n = 0; n < out.length; n++) out[n] += add[n];
}

function cloneGrid(g: Grid): Grid {
  return { dims: [...g.dims], spacingMm: [...g.spacingMm], originMm: [...g.originMm], direction: g.direction.map((v) => [...v]) as [Vec3, Vec3, Vec3] };
}
