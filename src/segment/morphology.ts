/**
 * Binary 3-D morphology on masks: connected components, hole filling, erosion/dilation/opening/closing.
 *
 * Components and hole filling work on run-length rows (one run per stretch of set voxels in an i-row)
 * with union-find over runs: the work is one byte scan plus a merge per pair of neighbouring rows, and
 * no per-voxel label array is needed unless the caller asks for one.
 *
 * Erosion and dilation take a structuring element in mm (so anisotropic voxels are handled) and only
 * process the mask's bounding box. They also work on runs: the element is a list of row offsets, each
 * with the half-width of the element's section there, so a dilation widens runs and unions them without
 * visiting run interiors offset by offset. The ball is exact (Euclidean in mm), not a separable
 * approximation; its cost grows with the number of element rows, about pi*rj*rk.
 * Voxels outside the volume are ignored: erosion does not eat in from the volume's faces (a body cut by
 * the scan limits must keep its end slices) and dilation does not grow from them.
 */
import type { Mask, Vec3 } from '../geometry/types.js';
import { boundingBox, boxDims, expandBox, skipOnes, skipZeros, wordView, type Box, type Dims } from './mask.js';

export type Connectivity = 6 | 26;
/** 4 and 8 connect within a slice only (2-D); 6 and 26 in 3-D. */
type AnyConnectivity = 4 | 8 | Connectivity;

/** Runs of set (or clear) voxels: row r = j + k*ny holds runs rowFirst[r] .. rowFirst[r+1]-1, each [start, end) in i. */
interface Runs {
  start: Int32Array;
  end: Int32Array;
  rowFirst: Int32Array;
  count: number;
}

/** Runs of voxels equal to `value` (any non-zero counts as 1) in the rows of `box` (default: the whole
 *  volume); run bounds are relative to box.lo[0] and row r = (j - lo[1]) + (k - lo[2]) * box height. */
function encodeRuns(data: Uint8Array, dims: Dims, value: 0 | 1, box: Box = { lo: [0, 0, 0], hi: dims }): Runs {
  const [cx, cy, cz] = boxDims(box);
  const rows = cy * cz;
  let start = new Int32Array(Math.max(1024, rows * 2));
  let end = new Int32Array(start.length);
  const rowFirst = new Int32Array(rows + 1);
  const words = wordView(data);
  let n = 0;
  for (let r = 0; r < rows; r++) {
    rowFirst[r] = n;
    const j = box.lo[1] + (r % cy);
    const k = box.lo[2] + Math.floor(r / cy);
    const base = (k * dims[1] + j) * dims[0] + box.lo[0];
    let i = 0;
    while (i < cx) {
      i = value ? skipZeros(data, words, base, i, cx) : skipOnes(data, words, base, i, cx);
      if (i === cx) break;
      const s = i;
      i = value ? skipOnes(data, words, base, i, cx) : skipZeros(data, words, base, i, cx);
      if (n === start.length) {
        start = grow(start);
        end = grow(end);
      }
      start[n] = s;
      end[n++] = i;
    }
  }
  rowFirst[rows] = n;
  return { start, end, rowFirst, count: n };
}

function grow(a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}

/** Earlier rows (in scan order) a row connects to: [dj, dk, slack]; slack 1 lets runs touch diagonally. */
const NEIGHBOUR_ROWS: Record<AnyConnectivity, [number, number, number][]> = {
  4: [[-1, 0, 0]],
  8: [[-1, 0, 1]],
  6: [[-1, 0, 0], [0, -1, 0]],
  26: [[-1, 0, 1], [-1, -1, 1], [0, -1, 1], [1, -1, 1]],
};

function find(parent: Int32Array, x: number): number {
  while (parent[x] !== x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

/** Links the two roots, the smaller index winning, so each root is the first run of its component. */
function union(parent: Int32Array, a: number, b: number): void {
  a = find(parent, a);
  b = find(parent, b);
  if (a < b) parent[b] = a;
  else if (b < a) parent[a] = b;
}

/** Unions overlapping runs of two rows; both run lists are sorted, so one merge pass suffices. */
function mergeRows(runs: Runs, parent: Int32Array, row: number, other: number, slack: number): void {
  const { start, end, rowFirst } = runs;
  let p = rowFirst[other];
  const pEnd = rowFirst[other + 1];
  for (let q = rowFirst[row]; q < rowFirst[row + 1]; q++) {
    while (p < pEnd && end[p] + slack <= start[q]) p++;
    for (let t = p; t < pEnd && start[t] < end[q] + slack; t++) union(parent, q, t);
  }
}

interface LabelledRuns {
  runs: Runs;
  /** Component label (1..count) of each run, numbered in scan order. */
  runLabel: Int32Array;
  /** Voxel count per label; sizes[0] = 0. */
  sizes: Int32Array;
  count: number;
}

function labelRuns(runs: Runs, dims: Dims, connectivity: AnyConnectivity): LabelledRuns {
  const [, ny, nz] = dims;
  const parent = new Int32Array(runs.count);
  for (let r = 0; r < runs.count; r++) parent[r] = r;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (const [dj, dk, slack] of NEIGHBOUR_ROWS[connectivity]) {
        const jj = j + dj;
        const kk = k + dk;
        if (jj >= 0 && jj < ny && kk >= 0) mergeRows(runs, parent, k * ny + j, kk * ny + jj, slack);
      }
    }
  }
  const runLabel = new Int32Array(runs.count);
  let count = 0;
  for (let r = 0; r < runs.count; r++) {
    const root = find(parent, r);
    runLabel[r] = root === r ? ++count : runLabel[root];
  }
  const sizes = new Int32Array(count + 1);
  for (let r = 0; r < runs.count; r++) sizes[runLabel[r]] += runs.end[r] - runs.start[r];
  return { runs, runLabel, sizes, count };
}

/** Paints, in `out`, each run with paint[its label]; labels painted 0 are skipped. */
function paintRuns(l: LabelledRuns, nx: number, paint: Uint8Array, out: Uint8Array): Uint8Array {
  const { start, end, rowFirst } = l.runs;
  for (let row = 0; row < rowFirst.length - 1; row++) {
    for (let r = rowFirst[row]; r < rowFirst[row + 1]; r++) {
      const value = paint[l.runLabel[r]];
      if (value) out.fill(value, row * nx + start[r], row * nx + end[r]);
    }
  }
  return out;
}

function labelMask(mask: Mask, connectivity: Connectivity): LabelledRuns {
  return labelRuns(encodeRuns(mask.data, mask.grid.dims, 1), mask.grid.dims, connectivity);
}

export interface Components {
  /** Per voxel: 0 background, else the component label 1..count (numbered in scan order). */
  labels: Int32Array;
  /** Voxel count per label; sizes[0] = 0. */
  sizes: Int32Array;
  count: number;
}

export function connectedComponents(mask: Mask, connectivity: Connectivity = 26): Components {
  const l = labelMask(mask, connectivity);
  const nx = mask.grid.dims[0];
  const labels = new Int32Array(mask.data.length);
  const { start, end, rowFirst } = l.runs;
  for (let row = 0; row < rowFirst.length - 1; row++) {
    for (let r = rowFirst[row]; r < rowFirst[row + 1]; r++) labels.fill(l.runLabel[r], row * nx + start[r], row * nx + end[r]);
  }
  return { labels, sizes: l.sizes, count: l.count };
}

/** Labels ordered by decreasing size (ties: scan order). */
function labelsBySize(sizes: Int32Array): number[] {
  return Array.from({ length: sizes.length - 1 }, (_, i) => i + 1).sort((a, b) => sizes[b] - sizes[a] || a - b);
}

/** The `n` largest components as separate masks, largest first (fewer if the mask has fewer). */
export function largestComponents(mask: Mask, n: number, connectivity: Connectivity = 26): Mask[] {
  const l = labelMask(mask, connectivity);
  return labelsBySize(l.sizes)
    .slice(0, n)
    .map((label) => {
      const keep = new Uint8Array(l.count + 1);
      keep[label] = 1;
      return { grid: mask.grid, data: paintRuns(l, mask.grid.dims[0], keep, new Uint8Array(mask.data.length)) };
    });
}

/** The `n` (at most 255) largest components in one label array: 1 for the largest, 2 for the next, ...;
 *  `sizes[l - 1]` is the voxel count of label l. */
export function largestComponentLabels(mask: Mask, n: number, connectivity: Connectivity = 26): { labels: Uint8Array; sizes: number[] } {
  const l = labelMask(mask, connectivity);
  const order = labelsBySize(l.sizes).slice(0, Math.min(n, 255));
  const paint = new Uint8Array(l.count + 1);
  order.forEach((label, rank) => (paint[label] = rank + 1));
  return { labels: paintRuns(l, mask.grid.dims[0], paint, new Uint8Array(mask.data.length)), sizes: order.map((label) => l.sizes[label]) };
}

/** Components with at least one voxel in slice k. */
export function componentsTouchingSlice(mask: Mask, k: number, connectivity: Connectivity = 26): Mask {
  const [nx, ny] = mask.grid.dims;
  const l = labelMask(mask, connectivity);
  const keep = new Uint8Array(l.count + 1);
  for (let r = l.runs.rowFirst[k * ny]; r < l.runs.rowFirst[(k + 1) * ny]; r++) keep[l.runLabel[r]] = 1;
  return { grid: mask.grid, data: paintRuns(l, nx, keep, new Uint8Array(mask.data.length)) };
}

export function keepLargestComponent(mask: Mask, connectivity: Connectivity = 26): Mask {
  return largestComponents(mask, 1, connectivity)[0] ?? { grid: mask.grid, data: new Uint8Array(mask.data.length) };
}

export function removeSmallComponents(mask: Mask, minVoxels: number, connectivity: Connectivity = 26): Mask {
  const l = labelMask(mask, connectivity);
  const keep = l.sizes.map((s) => (s >= minVoxels ? 1 : 0));
  keep[0] = 0;
  return { grid: mask.grid, data: paintRuns(l, mask.grid.dims[0], Uint8Array.from(keep), new Uint8Array(mask.data.length)) };
}

/** Components of `mask` that contain no voxel outside `within`, e.g. air pockets not connected to the air
 *  around the patient. */
export function componentsInside(mask: Mask, within: Mask, connectivity: Connectivity = 6): Mask {
  const l = labelMask(mask, connectivity);
  const nx = mask.grid.dims[0];
  const outside = new Uint8Array(l.count + 1);
  const { start, end, rowFirst } = l.runs;
  for (let row = 0; row < rowFirst.length - 1; row++) {
    for (let r = rowFirst[row]; r < rowFirst[row + 1]; r++) {
      const label = l.runLabel[r];
      if (outside[label]) continue;
      for (let v = row * nx + start[r]; v < row * nx + end[r]; v++) {
        if (within.data[v] === 0) {
          outside[label] = 1;
          break;
        }
      }
    }
  }
  const keep = outside.map((o) => 1 - o);
  keep[0] = 0;
  return { grid: mask.grid, data: paintRuns(l, nx, keep, new Uint8Array(mask.data.length)) };
}

/** Fills background regions that do not reach the border: per slice (2-D, 4-connected background, so
 *  an 8-connected outline closes a hole) or in 3-D (6-connected background, any face of the volume). */
function fillHoles(mask: Mask, perSlice: boolean): Mask {
  const dims = mask.grid.dims;
  const [nx, ny, nz] = dims;
  const l = labelRuns(encodeRuns(mask.data, dims, 0), dims, perSlice ? 4 : 6);
  const reachesBorder = new Uint8Array(l.count + 1);
  const { start, end, rowFirst } = l.runs;
  for (let row = 0; row < rowFirst.length - 1; row++) {
    const j = row % ny;
    const k = (row - j) / ny;
    const edgeRow = j === 0 || j === ny - 1 || (!perSlice && (k === 0 || k === nz - 1));
    for (let r = rowFirst[row]; r < rowFirst[row + 1]; r++) {
      if (edgeRow || start[r] === 0 || end[r] === nx) reachesBorder[l.runLabel[r]] = 1;
    }
  }
  const holes = reachesBorder.map((b) => 1 - b);
  holes[0] = 0;
  return { grid: mask.grid, data: paintRuns(l, nx, holes, mask.data.slice()) };
}

export function fillHolesPerSlice(mask: Mask): Mask {
  return fillHoles(mask, true);
}

export function fillHoles3d(mask: Mask): Mask {
  return fillHoles(mask, false);
}

// ---------------------------------------------------------------------------------------------------
// Erosion and dilation

export interface StructuringElement {
  /** Radius in mm, or semi-axes per axis (i, j, k); an axis whose radius is below its spacing is not used. */
  radiusMm: number | Vec3;
  /** Default 'ball'. */
  shape?: 'ball' | 'box';
}

/** Radii in voxel units per axis (fractional; <1 means the element does not extend along that axis). */
function radiiVoxels(mask: Mask, se: StructuringElement): Vec3 {
  const r = typeof se.radiusMm === 'number' ? [se.radiusMm, se.radiusMm, se.radiusMm] : se.radiusMm;
  return [0, 1, 2].map((a) => r[a] / mask.grid.spacingMm[a]) as Vec3;
}

const EPS = 1e-6;

export function dilate(mask: Mask, se: StructuringElement): Mask {
  const dims = mask.grid.dims;
  const radii = radiiVoxels(mask, se);
  const out = new Uint8Array(mask.data.length);
  const bb = boundingBox(mask.data, dims);
  if (!bb) return { grid: mask.grid, data: out };
  const box = expandBox(bb, radii.map((r) => Math.floor(r + EPS)) as Dims, dims);
  spreadRuns(encodeRuns(mask.data, dims, 1, box), box, dims, elementRows(radii, se.shape ?? 'ball'), out, 1);
  return { grid: mask.grid, data: out };
}

/** Erosion clears every voxel the element, centred on it, would push into a background voxel. Only the
 *  background in the bounding box plus one voxel is spread: any background voxel further out has a
 *  closer one on that extra layer (all background), so the result is exact. */
export function erode(mask: Mask, se: StructuringElement): Mask {
  const dims = mask.grid.dims;
  const out = mask.data.slice();
  const bb = boundingBox(mask.data, dims);
  if (!bb) return { grid: mask.grid, data: out };
  const box = expandBox(bb, [1, 1, 1], dims);
  spreadRuns(encodeRuns(mask.data, dims, 0, box), box, dims, elementRows(radiiVoxels(mask, se), se.shape ?? 'ball'), out, 0);
  return { grid: mask.grid, data: out };
}

export function open(mask: Mask, se: StructuringElement): Mask {
  return dilate(erode(mask, se), se);
}

export function close(mask: Mask, se: StructuringElement): Mask {
  return erode(dilate(mask, se), se);
}

/** One row offset of a structuring element and the half-width (voxels along i) of its section there. */
interface RowOffset {
  dj: number;
  dk: number;
  halfWidth: number;
}

/** Row offsets of the element. A ball includes offset d iff sum (d_a / r_a)^2 <= 1 with radii in voxels,
 *  which is the Euclidean test in mm; an axis with radius below one voxel admits only offset 0. */
function elementRows(radii: Vec3, shape: 'ball' | 'box'): RowOffset[] {
  const reach = radii.map((r) => Math.floor(r + EPS));
  const rows: RowOffset[] = [];
  for (let dk = -reach[2]; dk <= reach[2]; dk++) {
    for (let dj = -reach[1]; dj <= reach[1]; dj++) {
      if (shape === 'box') {
        rows.push({ dj, dk, halfWidth: reach[0] });
        continue;
      }
      const rest = 1 + EPS - (dj === 0 ? 0 : (dj / radii[1]) ** 2) - (dk === 0 ? 0 : (dk / radii[2]) ** 2);
      if (rest >= 0) rows.push({ dj, dk, halfWidth: Math.floor(radii[0] * Math.sqrt(rest) + EPS) });
    }
  }
  return rows;
}

/**
 * Writes `value` over the dilation of the runs (box rows) by a symmetric element, into the box of `out`.
 * For each target row, every run of each source row the element reaches is widened by the element's
 * half-width there and added to a difference array; its prefix sums give the union. Work is rows x
 * element rows x runs, independent of run lengths.
 */
function spreadRuns(runs: Runs, box: Box, dims: Dims, element: RowOffset[], out: Uint8Array, value: 0 | 1): void {
  const [cx, cy, cz] = boxDims(box);
  const diff = new Int32Array(cx + 1);
  const { start, end, rowFirst } = runs;
  for (let k = 0; k < cz; k++) {
    for (let j = 0; j < cy; j++) {
      let lo = cx;
      let hi = 0;
      for (const { dj, dk, halfWidth } of element) {
        const sj = j + dj;
        const sk = k + dk;
        if (sj < 0 || sj >= cy || sk < 0 || sk >= cz) continue;
        const row = sk * cy + sj;
        for (let r = rowFirst[row]; r < rowFirst[row + 1]; r++) {
          const a = start[r] > halfWidth ? start[r] - halfWidth : 0;
          const b = end[r] + halfWidth < cx ? end[r] + halfWidth : cx;
          diff[a]++;
          diff[b]--;
          if (a < lo) lo = a;
          if (b > hi) hi = b;
        }
      }
      if (lo >= hi) continue;
      const base = ((box.lo[2] + k) * dims[1] + box.lo[1] + j) * dims[0] + box.lo[0];
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

/**
 * Grows labelled seeds (1..255 in `labels`, 0 = unassigned) through the `allowed` voxels, breadth first
 * with 6-connectivity: each allowed voxel connected to a seed gets the label of the nearest seed in
 * steps (a geodesic Voronoi split). Returns a new label array; unreached voxels stay 0. The work is
 * proportional to the allowed voxels, found a word at a time, so a thin band around big seeds is cheap.
 */
export function growLabels(labels: Uint8Array, allowed: Uint8Array, dims: Dims): Uint8Array {
  const [nx, ny, nz] = dims;
  const out = labels.slice();
  let queue = new Int32Array(1 << 16);
  let tail = 0;
  // The first wave, found before any is labelled so that scan order does not favour a label.
  const firstWave: number[] = [];
  const words = wordView(allowed);
  for (let row = 0; row < ny * nz; row++) {
    const base = row * nx;
    for (let i = skipZeros(allowed, words, base, 0, nx); i < nx; i = skipZeros(allowed, words, base, i + 1, nx)) {
      const v = base + i;
      if (out[v] !== 0) continue;
      const label = labelledNeighbour(out, v, dims);
      if (label === 0) continue;
      firstWave.push(v, label);
    }
  }
  for (let n = 0; n < firstWave.length; n += 2) {
    out[firstWave[n]] = firstWave[n + 1];
    if (tail === queue.length) queue = grow(queue);
    queue[tail++] = firstWave[n];
  }
  const plane = nx * ny;
  for (let head = 0; head < tail; head++) {
    const v = queue[head];
    const label = out[v];
    const i = v % nx;
    const j = ((v - i) / nx) % ny;
    const k = (v - i - j * nx) / plane;
    for (let n = 0; n < 6; n++) {
      const u = neighbour(v, n, i, j, k, dims);
      if (u < 0 || out[u] !== 0 || allowed[u] === 0) continue;
      out[u] = label;
      if (tail === queue.length) queue = grow(queue);
      queue[tail++] = u;
    }
  }
  return out;
}

/** Index of the n-th (0..5) face neighbour of voxel v at (i, j, k), or -1 outside the volume. */
function neighbour(v: number, n: number, i: number, j: number, k: number, dims: Dims): number {
  const [nx, ny, nz] = dims;
  switch (n) {
    case 0:
      return i > 0 ? v - 1 : -1;
    case 1:
      return i < nx - 1 ? v + 1 : -1;
    case 2:
      return j > 0 ? v - nx : -1;
    case 3:
      return j < ny - 1 ? v + nx : -1;
    case 4:
      return k > 0 ? v - nx * ny : -1;
    default:
      return k < nz - 1 ? v + nx * ny : -1;
  }
}

/** Label of the first labelled face neighbour of v, or 0. */
function labelledNeighbour(labels: Uint8Array, v: number, dims: Dims): number {
  const [nx, ny] = dims;
  const i = v % nx;
  const j = ((v - i) / nx) % ny;
  const k = (v - i - j * nx) / (nx * ny);
  for (let n = 0; n < 6; n++) {
    const u = neighbour(v, n, i, j, k, dims);
    if (u >= 0 && labels[u] !== 0) return labels[u];
  }
  return 0;
}
