/**
 * Directional margins on binary masks: the PTV/PRV-style expansion (positive mm) or contraction
 * (negative mm) of a structure, with a different distance towards each patient direction.
 *
 * Directions are the patient's, in DICOM LPS: +x = left, +y = posterior, +z = superior. The
 * structuring element is a per-octant ellipsoid in patient mm: in the octant towards (left,
 * posterior, superior) its semi-axes are those three margins, and so on. Each voxel offset of the
 * grid is mapped to patient mm through the direction cosines before the test, so head-first,
 * feet-first, prone and supine grids (and oblique ones) all grow towards the right patient side.
 * A zero margin in a direction admits no offset that way. The element is convex, so its section on
 * each voxel row is one interval [lo, hi] of i offsets, which lets the work run on runs (below).
 *
 * Dilation = { p + d : p in mask, d in element }; erosion = { p : p + d in mask for every d in the
 * element }, so an anterior margin of -3 mm moves the anterior surface 3 mm back. A voxel is in
 * the result when its centre is within the margin (Euclidean per octant), so the growth is the
 * margin rounded down to whole voxels. Voxels outside the volume are ignored: erosion does not eat
 * in from the volume's faces (a structure cut by the scan limits keeps its end slices), as in
 * morphology.ts.
 *
 * Both work row by row over runs of set (or clear) voxels: for each target row, every source run
 * the element reaches is widened by the element's section on that row offset and accumulated in a
 * difference array. Work is rows x element rows x runs, independent of run lengths (a 512x512x200
 * body with 10 mm margins takes well under a second).
 */
import type { Grid, Mask, Mm, Vec3 } from '../geometry/types.js';
import { boundingBox, boxDims, expandBox, skipOnes, skipZeros, wordView, type Box, type Dims } from './mask.js';

/** Margin per patient direction in mm; positive grows the structure that way, negative shrinks it. */
export interface DirectionalMargin {
  anterior: Mm;
  posterior: Mm;
  left: Mm;
  right: Mm;
  superior: Mm;
  inferior: Mm;
}

export const MARGIN_DIRECTIONS = ['anterior', 'posterior', 'left', 'right', 'superior', 'inferior'] as const;
export function uniformMargin(mm: Mm): DirectionalMargin {
  return { anterior: mm, posterior: mm, left: mm, right: mm, superior: mm, inferior: mm };
}

export function isZeroMargin(m: DirectionalMargin): boolean {
  return MARGIN_DIRECTIONS.every((d) => m[d] === 0);
}

/**
 * Applies the margin. Directions with positive and negative margins may be mixed: the structure is
 * first grown by the positive ones, then shrunk by the negative ones.
 */
export function applyMargin(mask: Mask, margin: DirectionalMargin): Mask {
  for (const d of MARGIN_DIRECTIONS) {
    if (!Number.isFinite(margin[d])) throw new RangeError(`margin ${d} must be a finite number of mm, got ${margin[d]}`);
  }
  const grow = mapMargin(margin, (v) => Math.max(0, v));
  const shrink = mapMargin(margin, (v) => Math.max(0, -v));
  let out = mask;
  if (!isZeroMargin(grow)) out = dilateDirectional(out, grow);
  if (!isZeroMargin(shrink)) out = erodeDirectional(out, shrink);
  return out === mask ? { grid: mask.grid, data: mask.data.slice() } : out;
}

function mapMargin(m: DirectionalMargin, f: (v: number) => number): DirectionalMargin {
  return Object.fromEntries(MARGIN_DIRECTIONS.map((d) => [d, f(m[d])])) as unknown as DirectionalMargin;
}

/** Grows the mask by non-negative margins. */
export function dilateDirectional(mask: Mask, margin: DirectionalMargin): Mask {
  const dims = mask.grid.dims as Dims;
  const out = new Uint8Array(mask.data.length);
  const bb = boundingBox(mask.data, dims);
  if (!bb) return { grid: mask.grid, data: out };
  const element = marginElement(mask.grid, margin);
  const target = expandBox(bb, element.reach, dims);
  // Target p gets source q = p - d: source row (j - dj, k - dk), run [s, e) covers [s + lo, e + hi).
  const reach = element.rows.map((r) => ({ dj: -r.dj, dk: -r.dk, addStart: r.lo, addEnd: r.hi }));
  spread(encodeRuns(mask.data, dims, 1, bb), bb, target, dims, reach, out, 1);
  return { grid: mask.grid, data: out };
}

/** Shrinks the mask by non-negative margins. */
export function erodeDirectional(mask: Mask, margin: DirectionalMargin): Mask {
  const dims = mask.grid.dims as Dims;
  const out = mask.data.slice();
  const bb = boundingBox(mask.data, dims);
  if (!bb) return { grid: mask.grid, data: out };
  const element = marginElement(mask.grid, margin);
  // Background the element can reach from inside the box; everything there outside bb is background.
  const around = expandBox(bb, element.reach, dims);
  // p is cleared when p + d is background: source row (j + dj, k + dk), run [s, e) clears [s - hi, e - lo).
  const reach = element.rows.map((r) => ({ dj: r.dj, dk: r.dk, addStart: -r.hi, addEnd: -r.lo }));
  spread(encodeRuns(mask.data, dims, 0, around), around, bb, dims, reach, out, 0);
  return { grid: mask.grid, data: out };
}

// ------------------------------------------------------------------------------ structuring element

/** One voxel row of the element: offsets (lo..hi, dj, dk) in voxels, lo <= hi, both inclusive. */
export interface ElementRow {
  dj: number;
  dk: number;
  lo: number;
  hi: number;
}

export interface MarginElement {
  rows: ElementRow[];
  /** Largest |offset| along i, j, k. */
  reach: Dims;
}

/** Below this (mm) a displacement component counts as zero, so cosines like 1e-17 do not matter. */
const ZERO_MM = 1e-6;
const INSIDE_TOLERANCE = 1e-9;

/** The voxel offsets of the per-octant ellipsoid of non-negative `margin` on `grid`. */
export function marginElement(grid: Grid, margin: DirectionalMargin): MarginElement {
  for (const d of MARGIN_DIRECTIONS) {
    if (!(margin[d] >= 0)) throw new RangeError(`marginElement needs non-negative margins; ${d} is ${margin[d]}`);
  }
  const largest = Math.max(...MARGIN_DIRECTIONS.map((d) => margin[d]));
  const reachFull = grid.spacingMm.map((s) => Math.floor(largest / s + INSIDE_TOLERANCE)) as Dims;
  // Patient displacement (mm) of one voxel step along each axis.
  const step = [0, 1, 2].map((a) => grid.direction[a].map((c) => c * grid.spacingMm[a]) as Vec3);
  // Semi-axis for the negative and positive side of patient x, y, z.
  const semi: [number, number][] = [
    [margin.right, margin.left],
    [margin.anterior, margin.posterior],
    [margin.inferior, margin.superior],
  ];
  const inside = (di: number, dj: number, dk: number): boolean => {
    let sum = 0;
    for (let x = 0; x < 3; x++) {
      const p = di * step[0][x] + dj * step[1][x] + dk * step[2][x];
      if (Math.abs(p) < ZERO_MM) continue;
      const r = semi[x][p > 0 ? 1 : 0];
      if (r === 0) return false;
      sum += (p / r) ** 2;
    }
    return sum <= 1 + INSIDE_TOLERANCE;
  };
  const rows: ElementRow[] = [];
  const reach: Dims = [0, 0, 0];
  for (let dk = -reachFull[2]; dk <= reachFull[2]; dk++) {
    for (let dj = -reachFull[1]; dj <= reachFull[1]; dj++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let di = -reachFull[0]; di <= reachFull[0]; di++) {
        if (!inside(di, dj, dk)) continue;
        if (di < lo) lo = di;
        hi = di;
      }
      if (lo > hi) continue;
      rows.push({ dj, dk, lo, hi });
      reach[0] = Math.max(reach[0], -lo, hi);
      reach[1] = Math.max(reach[1], Math.abs(dj));
      reach[2] = Math.max(reach[2], Math.abs(dk));
    }
  }
  return { rows, reach };
}

// ------------------------------------------------------------------------------------ run spreading

/** Runs of voxels equal to `value` per row of `box`; row r = (j - lo1) + (k - lo2) * height holds runs
 *  rowFirst[r] .. rowFirst[r+1]-1, each [start, end) in absolute i. */
interface Runs {
  start: Int32Array;
  end: Int32Array;
  rowFirst: Int32Array;
}

function encodeRuns(data: Uint8Array, dims: Dims, value: 0 | 1, box: Box): Runs {
  const [, cy, cz] = boxDims(box);
  const rows = cy * cz;
  let start = new Int32Array(Math.max(1024, rows * 2));
  let end = new Int32Array(start.length);
  const rowFirst = new Int32Array(rows + 1);
  const words = wordView(data);
  const [i0, i1] = [box.lo[0], box.hi[0]];
  let n = 0;
  for (let r = 0; r < rows; r++) {
    rowFirst[r] = n;
    const j = box.lo[1] + (r % cy);
    const k = box.lo[2] + Math.floor(r / cy);
    const base = (k * dims[1] + j) * dims[0];
    let i = i0;
    while (i < i1) {
      i = value ? skipZeros(data, words, base, i, i1) : skipOnes(data, words, base, i, i1);
      if (i === i1) break;
      const s = i;
      i = value ? skipOnes(data, words, base, i, i1) : skipZeros(data, words, base, i, i1);
      if (n === start.length) {
        start = grow(start);
        end = grow(end);
      }
      start[n] = s;
      end[n++] = i;
    }
  }
  rowFirst[rows] = n;
  return { start, end, rowFirst };
}

function grow(a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}

/** Target row (j, k) takes the runs of source row (j + dj, k + dk), each [s, e) widened to
 *  [s + addStart, e + addEnd). */
interface RowReach {
  dj: number;
  dk: number;
  addStart: number;
  addEnd: number;
}

/** For every row of `target`, unions the widened runs of the source rows each reach names, and
 *  writes `value` where the union covers. */
function spread(runs: Runs, source: Box, target: Box, dims: Dims, reach: RowReach[], out: Uint8Array, value: 0 | 1): void {
  const nx = dims[0];
  const diff = new Int32Array(nx + 1);
  const sy = source.hi[1] - source.lo[1];
  const { start, end, rowFirst } = runs;
  for (let k = target.lo[2]; k < target.hi[2]; k++) {
    for (let j = target.lo[1]; j < target.hi[1]; j++) {
      let lo = nx;
      let hi = 0;
      for (const r of reach) {
        const sj = j + r.dj;
        const sk = k + r.dk;
        if (sj < source.lo[1] || sj >= source.hi[1] || sk < source.lo[2] || sk >= source.hi[2]) continue;
        const row = (sk - source.lo[2]) * sy + (sj - source.lo[1]);
        for (let q = rowFirst[row]; q < rowFirst[row + 1]; q++) {
          const a = start[q] + r.addStart > 0 ? start[q] + r.addStart : 0;
          const b = end[q] + r.addEnd < nx ? end[q] + r.addEnd : nx;
          if (a >= b) continue;
          diff[a]++;
          diff[b]--;
          if (a < lo) lo = a;
          if (b > hi) hi = b;
        }
      }
      if (lo >= hi) continue;
      const base = (k * dims[1] + j) * nx;
      let depth = 0;
      for (let i = lo; i < hi; i++) {
        depth += diff[i];
        diff[i] = 0;
        if (depth > 0) out[base + i] = value;
      }
      diff[hi] = 0;
    }
  }
}
