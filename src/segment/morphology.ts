/**
 * Binary 3-D morphology: connected components, hole filling, erosion/dilation/opening/closing and
 * geodesic label growing. The work is done on run-length masks (runs.ts), so its cost follows the
 * number of runs, not of voxels; the Mask (byte) versions convert at the edges.
 *
 * Components and hole filling use union-find over runs: two runs of neighbouring rows that overlap
 * (or touch diagonally, for 26- and 8-connectivity) are one component.
 *
 * Erosion and dilation take a structuring element in mm (so anisotropic voxels are handled). The
 * element is a list of row offsets (dj, dk), each with the half-width of the element's section there,
 * so a row of the dilation is the union of its source rows' runs widened by those half-widths, and a
 * row of the erosion the intersection of its source rows' runs narrowed by them. The ball is exact
 * (Euclidean in mm), not a separable approximation. Voxels outside the volume are ignored: erosion
 * does not eat in from the volume's faces (a body cut by the scan limits must keep its end slices)
 * and dilation does not grow from them.
 */
import type { Mask, Vec3 } from '../geometry/types.js';
import { boxDims, cropGrid, expandBox, skipZeros, wordView, type Box, type Dims } from './mask.js';
import {
  maskOfRuns,
  paintRuns,
  runCount,
  RunBuilder,
  runsBox,
  runsOfLabels,
  runsOfMask,
  cropRuns,
  subtractRuns,
  uncropRuns,
  unionRuns,
  voxelsOf,
  type LabelledRunMask,
  type RunMask,
} from './runs.js';

export type Connectivity = 6 | 26;
/** 4 and 8 connect within a slice only (2-D); 6 and 26 in 3-D. */
type AnyConnectivity = 4 | 8 | Connectivity;

// ---------------------------------------------------------------------------------------------------
// Connected components

/** The runs union-find works on: rows r = j + k * ny of a volume of `dims`. */
interface Runs {
  start: Int32Array;
  end: Int32Array;
  rowFirst: Int32Array;
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

export interface RunComponents {
  /** Component label (1..count) of each run, numbered in scan order. */
  runLabel: Int32Array;
  /** Voxel count per label; sizes[0] = 0. */
  sizes: Int32Array;
  count: number;
}

function labelRuns(runs: Runs, dims: Dims, connectivity: AnyConnectivity): RunComponents {
  const [, ny, nz] = dims;
  const count0 = runs.rowFirst[ny * nz];
  const parent = new Int32Array(count0);
  for (let r = 0; r < count0; r++) parent[r] = r;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      const row = k * ny + j;
      if (runs.rowFirst[row] === runs.rowFirst[row + 1]) continue;
      for (const [dj, dk, slack] of NEIGHBOUR_ROWS[connectivity]) {
        const jj = j + dj;
        const kk = k + dk;
        if (jj >= 0 && jj < ny && kk >= 0) mergeRows(runs, parent, row, kk * ny + jj, slack);
      }
    }
  }
  const runLabel = new Int32Array(count0);
  let count = 0;
  for (let r = 0; r < count0; r++) {
    const root = find(parent, r);
    runLabel[r] = root === r ? ++count : runLabel[root];
  }
  const sizes = new Int32Array(count + 1);
  for (let r = 0; r < count0; r++) sizes[runLabel[r]] += runs.end[r] - runs.start[r];
  return { runLabel, sizes, count };
}

export function componentsOfRuns(m: RunMask, connectivity: Connectivity = 26): RunComponents {
  return labelRuns(m, m.grid.dims, connectivity);
}

/** The runs whose component is kept (keep[label] non-zero). */
function selectRuns(m: RunMask, c: RunComponents, keep: ArrayLike<number>): RunMask {
  const b = new RunBuilder(m.grid, runCount(m));
  const rows = m.rowFirst.length - 1;
  for (let r = 0; r < rows; r++) {
    b.toRow(r);
    for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) if (keep[c.runLabel[n]]) b.addSeparate(m.start[n], m.end[n]);
  }
  return b.finish();
}

/** Labels ordered by decreasing size (ties: scan order). */
function labelsBySize(sizes: Int32Array): number[] {
  return Array.from({ length: sizes.length - 1 }, (_, i) => i + 1).sort((a, b) => sizes[b] - sizes[a] || a - b);
}

export function keepLargestRuns(m: RunMask, connectivity: Connectivity = 26): RunMask {
  const c = componentsOfRuns(m, connectivity);
  const keep = new Uint8Array(c.count + 1);
  const [largest] = labelsBySize(c.sizes);
  if (largest !== undefined) keep[largest] = 1;
  return selectRuns(m, c, keep);
}

/** The `n` (at most 255) largest components as labels 1 (largest), 2, ...; sizes[l - 1] is label l's. */
export function largestLabelRuns(m: RunMask, n: number, connectivity: Connectivity = 26): { labelled: LabelledRunMask; sizes: number[] } {
  const c = componentsOfRuns(m, connectivity);
  const order = labelsBySize(c.sizes).slice(0, Math.min(n, 255));
  const rank = new Uint8Array(c.count + 1);
  order.forEach((label, r) => (rank[label] = r + 1));
  const kept = selectRuns(m, c, rank);
  const label = new Uint8Array(runCount(kept));
  let out = 0;
  for (let r = 0; r < runCount(m); r++) if (rank[c.runLabel[r]]) label[out++] = rank[c.runLabel[r]];
  return { labelled: { ...kept, label }, sizes: order.map((l) => c.sizes[l]) };
}

export function removeSmallRuns(m: RunMask, minVoxels: number, connectivity: Connectivity = 26): RunMask {
  const c = componentsOfRuns(m, connectivity);
  const keep = c.sizes.map((s) => (s >= minVoxels ? 1 : 0));
  keep[0] = 0;
  return selectRuns(m, c, keep);
}

/** Components of `m` that contain no voxel outside `within` (same grid), e.g. air pockets not
 *  connected to the air around the patient. */
export function componentsInsideRuns(m: RunMask, within: RunMask, connectivity: Connectivity = 6): RunMask {
  const c = componentsOfRuns(m, connectivity);
  const outside = new Uint8Array(c.count + 1);
  const rows = m.rowFirst.length - 1;
  for (let r = 0; r < rows; r++) {
    let q = within.rowFirst[r];
    const qEnd = within.rowFirst[r + 1];
    for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) {
      // Runs of `within` are separated by clear voxels, so a run inside it lies in a single one.
      while (q < qEnd && within.end[q] <= m.start[n]) q++;
      if (!(q < qEnd && within.start[q] <= m.start[n] && m.end[n] <= within.end[q])) outside[c.runLabel[n]] = 1;
    }
  }
  const keep = outside.map((o) => 1 - o);
  keep[0] = 0;
  return selectRuns(m, c, keep);
}

/** Components with at least one voxel in slice k. */
export function componentsTouchingSliceRuns(m: RunMask, k: number, connectivity: Connectivity = 26): RunMask {
  const ny = m.grid.dims[1];
  const c = componentsOfRuns(m, connectivity);
  const keep = new Uint8Array(c.count + 1);
  for (let n = m.rowFirst[k * ny]; n < m.rowFirst[(k + 1) * ny]; n++) keep[c.runLabel[n]] = 1;
  return selectRuns(m, c, keep);
}

// ---------------------------------------------------------------------------------------------------
// Hole filling

/** Fills background regions that do not reach the border: per slice (2-D, 4-connected background, so
 *  an 8-connected outline closes a hole) or in 3-D (6-connected background, any face of the volume).
 *  Only the box around the mask plus one voxel is looked at: beyond it all is background, connected
 *  to the border. */
export function fillHolesRuns(m: RunMask, perSlice: boolean): RunMask {
  const dims = m.grid.dims;
  const bb = runsBox(m);
  if (!bb) return m;
  const box = expandBox(bb, [1, 1, perSlice ? 0 : 1], dims);
  const [cx, cy, cz] = boxDims(box);
  const inBox = cropRuns(m, box);
  const gaps = complementRuns(inBox);
  const c = labelRuns(gaps, [cx, cy, cz], perSlice ? 4 : 6);
  const reachesBorder = new Uint8Array(c.count + 1);
  for (let row = 0; row < cy * cz; row++) {
    const j = row % cy;
    const k = (row - j) / cy;
    const edgeRow = j === 0 || j === cy - 1 || (!perSlice && (k === 0 || k === cz - 1));
    for (let r = gaps.rowFirst[row]; r < gaps.rowFirst[row + 1]; r++) {
      if (edgeRow || gaps.start[r] === 0 || gaps.end[r] === cx) reachesBorder[c.runLabel[r]] = 1;
    }
  }
  const holes = reachesBorder.map((b) => 1 - b);
  holes[0] = 0;
  return unionRuns(m, uncropRuns(selectRuns(gaps, c, holes), box, m.grid));
}

/** The clear voxels of each row as runs. */
function complementRuns(m: RunMask): RunMask {
  const nx = m.grid.dims[0];
  const rows = m.rowFirst.length - 1;
  const b = new RunBuilder(m.grid, runCount(m) + rows);
  for (let r = 0; r < rows; r++) {
    b.toRow(r);
    let at = 0;
    for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) {
      if (m.start[n] > at) b.addSeparate(at, m.start[n]);
      at = m.end[n];
    }
    if (at < nx) b.addSeparate(at, nx);
  }
  return b.finish();
}

// ---------------------------------------------------------------------------------------------------
// Erosion and dilation

export interface StructuringElement {
  /** Radius in mm, or semi-axes per axis (i, j, k); an axis whose radius is below its spacing is not used. */
  radiusMm: number | Vec3;
  /** Default 'ball'. */
  shape?: 'ball' | 'box';
}

/** One row offset of a structuring element and the half-width (voxels along i) of its section there. */
interface RowOffset {
  dj: number;
  dk: number;
  halfWidth: number;
}

const EPS = 1e-6;

/** Radii in voxel units per axis (fractional; <1 means the element does not extend along that axis). */
function radiiVoxels(spacingMm: Vec3, se: StructuringElement): Vec3 {
  const r = typeof se.radiusMm === 'number' ? [se.radiusMm, se.radiusMm, se.radiusMm] : se.radiusMm;
  return [0, 1, 2].map((a) => r[a] / spacingMm[a]) as Vec3;
}

/** Row offsets of the element, the centre row first. A ball includes offset d iff
 *  sum (d_a / r_a)^2 <= 1 with radii in voxels, which is the Euclidean test in mm; an axis with
 *  radius below one voxel admits only offset 0. */
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
  return rows.sort((a, b) => Number(b.dj === 0 && b.dk === 0) - Number(a.dj === 0 && a.dk === 0));
}

/** The element's row offsets as flat triples (dj, dk, half-width), for the hot loops. */
function flatElement(m: RunMask, se: StructuringElement): Int32Array {
  const rows = elementRows(radiiVoxels(m.grid.spacingMm, se), se.shape ?? 'ball');
  return Int32Array.from(rows.flatMap((e) => [e.dj, e.dk, e.halfWidth]));
}

export function dilateRuns(m: RunMask, se: StructuringElement): RunMask {
  const [nx, ny, nz] = m.grid.dims;
  const element = flatElement(m, se);
  const bb = runsBox(m);
  const out = new RunBuilder(m.grid, runCount(m) * 2);
  if (!bb) return out.finish();
  let reachJ = 0;
  let reachK = 0;
  for (let e = 0; e < element.length; e += 3) {
    reachJ = Math.max(reachJ, Math.abs(element[e]));
    reachK = Math.max(reachK, Math.abs(element[e + 1]));
  }
  const { rowFirst, start, end } = m;
  // Two run lists, a (so far) and b (next), swapped after each element row. A row holds at most
  // (nx + 1) / 2 separated runs.
  let aStart = new Int32Array(nx + 2);
  let aEnd = new Int32Array(nx + 2);
  let bStart = new Int32Array(nx + 2);
  let bEnd = new Int32Array(nx + 2);
  for (let k = Math.max(0, bb.lo[2] - reachK); k < Math.min(nz, bb.hi[2] + reachK); k++) {
    for (let j = Math.max(0, bb.lo[1] - reachJ); j < Math.min(ny, bb.hi[1] + reachJ); j++) {
      let na = 0;
      for (let e = 0; e < element.length; e += 3) {
        const sj = j + element[e];
        const sk = k + element[e + 1];
        if (sj < 0 || sj >= ny || sk < 0 || sk >= nz) continue;
        const row = sk * ny + sj;
        const q1 = rowFirst[row + 1];
        let q = rowFirst[row];
        if (q === q1) continue;
        const w = element[e + 2];
        // Union of a with this row's runs widened by w, into b.
        let p = 0;
        let nb = 0;
        while (p < na || q < q1) {
          let rs: number;
          let re: number;
          if (q >= q1 || (p < na && aStart[p] <= start[q] - w)) {
            rs = aStart[p];
            re = aEnd[p++];
          } else {
            rs = start[q] - w;
            re = end[q++] + w;
            if (rs < 0) rs = 0;
            if (re > nx) re = nx;
          }
          if (nb > 0 && rs <= bEnd[nb - 1]) {
            if (re > bEnd[nb - 1]) bEnd[nb - 1] = re;
          } else {
            bStart[nb] = rs;
            bEnd[nb++] = re;
          }
        }
        const ts = aStart;
        const te = aEnd;
        aStart = bStart;
        aEnd = bEnd;
        bStart = ts;
        bEnd = te;
        na = nb;
      }
      if (na === 0) continue;
      out.toRow(k * ny + j);
      for (let p = 0; p < na; p++) out.addSeparate(aStart[p], aEnd[p]);
    }
  }
  return out.finish();
}

/** Erosion keeps a voxel when every voxel of the element centred on it is set or outside the volume. */
export function erodeRuns(m: RunMask, se: StructuringElement): RunMask {
  const [nx, ny, nz] = m.grid.dims;
  const element = flatElement(m, se); // the centre row first
  const out = new RunBuilder(m.grid, runCount(m));
  const { rowFirst, start, end } = m;
  let aStart = new Int32Array(nx + 2);
  let aEnd = new Int32Array(nx + 2);
  let bStart = new Int32Array(nx + 2);
  let bEnd = new Int32Array(nx + 2);
  const rows = ny * nz;
  for (let r = 0; r < rows; r++) {
    const r0 = rowFirst[r];
    const r1 = rowFirst[r + 1];
    if (r0 === r1) continue;
    const j = r % ny;
    const k = (r - j) / ny;
    // The centre row's runs narrowed by its half-width; runs at the volume's sides keep that side.
    const w0 = element[2];
    let na = 0;
    for (let q = r0; q < r1; q++) {
      const rs = start[q] === 0 ? 0 : start[q] + w0;
      const re = end[q] === nx ? nx : end[q] - w0;
      if (rs < re) {
        aStart[na] = rs;
        aEnd[na++] = re;
      }
    }
    for (let e = 3; e < element.length && na > 0; e += 3) {
      const sj = j + element[e];
      const sk = k + element[e + 1];
      if (sj < 0 || sj >= ny || sk < 0 || sk >= nz) continue;
      const row = sk * ny + sj;
      const w = element[e + 2];
      // Intersection of a with this row's narrowed runs, into b.
      let p = 0;
      let q = rowFirst[row];
      const q1 = rowFirst[row + 1];
      let nb = 0;
      while (p < na && q < q1) {
        const qs = start[q] === 0 ? 0 : start[q] + w;
        const qe = end[q] === nx ? nx : end[q] - w;
        if (qs >= qe) {
          q++;
          continue;
        }
        const rs = aStart[p] > qs ? aStart[p] : qs;
        const re = aEnd[p] < qe ? aEnd[p] : qe;
        if (rs < re) {
          bStart[nb] = rs;
          bEnd[nb++] = re;
        }
        if (aEnd[p] < qe) p++;
        else q++;
      }
      const ts = aStart;
      const te = aEnd;
      aStart = bStart;
      aEnd = bEnd;
      bStart = ts;
      bEnd = te;
      na = nb;
    }
    if (na === 0) continue;
    out.toRow(r);
    for (let p = 0; p < na; p++) out.addSeparate(aStart[p], aEnd[p]);
  }
  return out.finish();
}

export function openRuns(m: RunMask, se: StructuringElement): RunMask {
  return dilateRuns(erodeRuns(m, se), se);
}

export function closeRuns(m: RunMask, se: StructuringElement): RunMask {
  return erodeRuns(dilateRuns(m, se), se);
}

// ---------------------------------------------------------------------------------------------------
// Geodesic label growing

/** Up to this many voxels to grow into, growLabelRuns works on the runs; beyond, on byte arrays
 *  (a voxel costs a few binary searches on runs, a byte array costs its whole box). */
const SPARSE_GROWTH_VOXELS = 1 << 19;

/**
 * Grows labelled seeds through the `allowed` voxels (same grid), breadth first with 6-connectivity:
 * each allowed voxel connected to a seed gets the label of the nearest seed in steps (a geodesic
 * Voronoi split); unreached voxels are left out. A thin band around big seeds (the lungs' edges) is
 * grown voxel by voxel with run lookups, a large region on byte arrays over its box. The result's
 * runs may touch runs of the same label.
 */
export function growLabelRuns(seeds: LabelledRunMask, allowed: RunMask, sparseLimitVoxels = SPARSE_GROWTH_VOXELS): LabelledRunMask {
  const free = subtractRuns(allowed, seeds);
  return voxelsOf(free) <= sparseLimitVoxels ? growSparse(seeds, free) : growDense(seeds, allowed);
}

/** The run of row `row` holding voxel i, or -1. */
function runAt(m: RunMask, row: number, i: number): number {
  let lo = m.rowFirst[row];
  let hi = m.rowFirst[row + 1] - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (m.end[mid] <= i) lo = mid + 1;
    else if (m.start[mid] > i) hi = mid - 1;
    else return mid;
  }
  return -1;
}

/** growLabels on runs: `free` (the allowed voxels that are not seeds) is numbered run by run, and
 *  each voxel's neighbours are found by binary search in their rows. Same order, same result. */
function growSparse(seeds: LabelledRunMask, free: RunMask): LabelledRunMask {
  const [nx, ny, nz] = seeds.grid.dims;
  const runs = runCount(free);
  const offset = new Int32Array(runs + 1); // number of the first voxel of each run
  for (let n = 0; n < runs; n++) offset[n + 1] = offset[n] + free.end[n] - free.start[n];
  const label = new Uint8Array(offset[runs]);
  const seedLabel = (i: number, j: number, k: number): number => {
    const n = runAt(seeds, k * ny + j, i);
    return n < 0 ? 0 : seeds.label[n];
  };
  const freeIndex = (i: number, j: number, k: number): number => {
    const n = runAt(free, k * ny + j, i);
    return n < 0 ? -1 : offset[n] + i - free.start[n];
  };
  // The first wave, found before any is labelled so that scan order does not favour a label; the
  // neighbours are tried in growLabels' order (-i, +i, -j, +j, -k, +k).
  const queue = new Int32Array(offset[runs] * 4); // free voxel number, i, j, k
  const firstLabel: number[] = [];
  let tail = 0;
  const rows = ny * nz;
  for (let r = 0; r < rows; r++) {
    const j = r % ny;
    const k = (r - j) / ny;
    for (let n = free.rowFirst[r]; n < free.rowFirst[r + 1]; n++) {
      for (let i = free.start[n]; i < free.end[n]; i++) {
        const l =
          (i > 0 ? seedLabel(i - 1, j, k) : 0) ||
          (i < nx - 1 ? seedLabel(i + 1, j, k) : 0) ||
          (j > 0 ? seedLabel(i, j - 1, k) : 0) ||
          (j < ny - 1 ? seedLabel(i, j + 1, k) : 0) ||
          (k > 0 ? seedLabel(i, j, k - 1) : 0) ||
          (k < nz - 1 ? seedLabel(i, j, k + 1) : 0);
        if (l === 0) continue;
        firstLabel.push(l);
        queue[tail++] = offset[n] + i - free.start[n];
        queue[tail++] = i;
        queue[tail++] = j;
        queue[tail++] = k;
      }
    }
  }
  firstLabel.forEach((l, w) => (label[queue[4 * w]] = l));
  for (let head = 0; head < tail; head += 4) {
    const l = label[queue[head]];
    const i = queue[head + 1];
    const j = queue[head + 2];
    const k = queue[head + 3];
    for (let n = 0; n < 6; n++) {
      const ni = n === 0 ? i - 1 : n === 1 ? i + 1 : i;
      const nj = n === 2 ? j - 1 : n === 3 ? j + 1 : j;
      const nk = n === 4 ? k - 1 : n === 5 ? k + 1 : k;
      if (ni < 0 || ni >= nx || nj < 0 || nj >= ny || nk < 0 || nk >= nz) continue;
      const f = freeIndex(ni, nj, nk);
      if (f < 0 || label[f] !== 0) continue;
      label[f] = l;
      queue[tail++] = f;
      queue[tail++] = ni;
      queue[tail++] = nj;
      queue[tail++] = nk;
    }
  }
  return mergeGrown(seeds, free, offset, label);
}

/** The seeds plus the labelled voxels of `free`, row by row, runs in order of start. */
function mergeGrown(seeds: LabelledRunMask, free: RunMask, offset: Int32Array, label: Uint8Array): LabelledRunMask {
  const b = new RunBuilder(seeds.grid, runCount(seeds) + runCount(free));
  const labels: number[] = [];
  const rows = seeds.rowFirst.length - 1;
  for (let r = 0; r < rows; r++) {
    b.toRow(r);
    let p = seeds.rowFirst[r];
    const pEnd = seeds.rowFirst[r + 1];
    for (let n = free.rowFirst[r]; n < free.rowFirst[r + 1]; n++) {
      // Each stretch of one label within the free run, after the seed runs that come before it.
      for (let i = free.start[n]; i < free.end[n]; ) {
        const l = label[offset[n] + i - free.start[n]];
        let e = i + 1;
        while (e < free.end[n] && label[offset[n] + e - free.start[n]] === l) e++;
        if (l !== 0) {
          for (; p < pEnd && seeds.start[p] < i; p++) {
            b.addSeparate(seeds.start[p], seeds.end[p]);
            labels.push(seeds.label[p]);
          }
          b.addSeparate(i, e);
          labels.push(l);
        }
        i = e;
      }
    }
    for (; p < pEnd; p++) {
      b.addSeparate(seeds.start[p], seeds.end[p]);
      labels.push(seeds.label[p]);
    }
  }
  return { ...b.finish(), label: Uint8Array.from(labels) };
}

/** growLabels on byte arrays over the box of the seeds and the allowed voxels. */
function growDense(seeds: LabelledRunMask, allowed: RunMask): LabelledRunMask {
  const a = runsBox(seeds);
  const b = runsBox(allowed);
  if (!a) return seeds;
  const box: Box = b ? { lo: [0, 1, 2].map((x) => Math.min(a.lo[x], b.lo[x])) as Dims, hi: [0, 1, 2].map((x) => Math.max(a.hi[x], b.hi[x])) as Dims } : a;
  const dims = boxDims(box);
  const size = dims[0] * dims[1] * dims[2];
  const labels = new Uint8Array(size);
  const seedRuns = cropRuns(seeds, box);
  const seedLabels = cropLabels(seeds, box);
  const nx = dims[0];
  // cropRuns keeps the runs in order and drops none here (the box holds them all): labels line up.
  for (let r = 0; r < seedRuns.rowFirst.length - 1; r++) {
    for (let n = seedRuns.rowFirst[r]; n < seedRuns.rowFirst[r + 1]; n++) labels.fill(seedLabels[n], r * nx + seedRuns.start[n], r * nx + seedRuns.end[n]);
  }
  const allowedBytes = paintRuns(cropRuns(allowed, box), new Uint8Array(size), 1);
  const grown = growLabels(labels, allowedBytes, dims);
  const labelled = runsOfLabels(grown, cropGrid(seeds.grid, box));
  return { ...uncropRuns(labelled, box, seeds.grid), label: labelled.label };
}

/** Labels of the runs that lie in `box`, in order (the runs of a labelled mask inside its box). */
function cropLabels(m: LabelledRunMask, box: Box): Uint8Array {
  const ny = m.grid.dims[1];
  const out: number[] = [];
  for (let k = box.lo[2]; k < box.hi[2]; k++) {
    for (let j = box.lo[1]; j < box.hi[1]; j++) {
      const r = k * ny + j;
      for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) out.push(m.label[n]);
    }
  }
  return Uint8Array.from(out);
}

/**
 * Grows labelled seeds (1..255 in `labels`, 0 = unassigned) through the `allowed` voxels, breadth first
 * with 6-connectivity: each allowed voxel connected to a seed gets the label of the nearest seed in
 * steps (a geodesic Voronoi split). Returns a new label array; unreached voxels stay 0. The work is
 * proportional to the allowed voxels, found a word at a time, so a thin band around big seeds is cheap.
 */
export function growLabels(labels: Uint8Array, allowed: Uint8Array, dims: Dims): Uint8Array {
  const [nx, ny] = dims;
  const out = labels.slice();
  let queue = new Int32Array(1 << 16);
  let tail = 0;
  const push = (v: number) => {
    if (tail === queue.length) {
      const bigger = new Int32Array(queue.length * 2);
      bigger.set(queue);
      queue = bigger;
    }
    queue[tail++] = v;
  };
  // The first wave, found before any is labelled so that scan order does not favour a label.
  const firstWave: number[] = [];
  const words = wordView(allowed);
  for (let row = 0; row < ny * dims[2]; row++) {
    const base = row * nx;
    for (let i = skipZeros(allowed, words, base, 0, nx); i < nx; i = skipZeros(allowed, words, base, i + 1, nx)) {
      const v = base + i;
      if (out[v] !== 0) continue;
      const label = labelledNeighbour(out, v, dims);
      if (label !== 0) firstWave.push(v, label);
    }
  }
  for (let n = 0; n < firstWave.length; n += 2) {
    out[firstWave[n]] = firstWave[n + 1];
    push(firstWave[n]);
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
      push(u);
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

// ---------------------------------------------------------------------------------------------------
// The same on byte masks

export interface Components {
  /** Per voxel: 0 background, else the component label 1..count (numbered in scan order). */
  labels: Int32Array;
  /** Voxel count per label; sizes[0] = 0. */
  sizes: Int32Array;
  count: number;
}

export function connectedComponents(mask: Mask, connectivity: Connectivity = 26): Components {
  const m = runsOfMask(mask);
  const c = componentsOfRuns(m, connectivity);
  const nx = mask.grid.dims[0];
  const labels = new Int32Array(mask.data.length);
  for (let r = 0; r < m.rowFirst.length - 1; r++) {
    for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) labels.fill(c.runLabel[n], r * nx + m.start[n], r * nx + m.end[n]);
  }
  return { labels, sizes: c.sizes, count: c.count };
}


/** The `n` (at most 255) largest components in one label array: 1 for the largest, 2 for the next, ...;
 *  `sizes[l - 1]` is the voxel count of label l. */
export function largestComponentLabels(mask: Mask, n: number, connectivity: Connectivity = 26): { labels: Uint8Array; sizes: number[] } {
  const { labelled, sizes } = largestLabelRuns(runsOfMask(mask), n, connectivity);
  return { labels: labelArray(labelled), sizes };
}

/** A labelled run mask as a label per voxel. */
export function labelArray(m: LabelledRunMask): Uint8Array {
  const nx = m.grid.dims[0];
  const out = new Uint8Array(m.grid.dims[0] * m.grid.dims[1] * m.grid.dims[2]);
  for (let r = 0; r < m.rowFirst.length - 1; r++) {
    for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) out.fill(m.label[n], r * nx + m.start[n], r * nx + m.end[n]);
  }
  return out;
}

/** Components with at least one voxel in slice k. */
export function componentsTouchingSlice(mask: Mask, k: number, connectivity: Connectivity = 26): Mask {
  return maskOfRuns(componentsTouchingSliceRuns(runsOfMask(mask), k, connectivity));
}

export function keepLargestComponent(mask: Mask, connectivity: Connectivity = 26): Mask {
  return maskOfRuns(keepLargestRuns(runsOfMask(mask), connectivity));
}

export function removeSmallComponents(mask: Mask, minVoxels: number, connectivity: Connectivity = 26): Mask {
  return maskOfRuns(removeSmallRuns(runsOfMask(mask), minVoxels, connectivity));
}

/** Components of `mask` that contain no voxel outside `within`, e.g. air pockets not connected to the air
 *  around the patient. */
export function componentsInside(mask: Mask, within: Mask, connectivity: Connectivity = 6): Mask {
  return maskOfRuns(componentsInsideRuns(runsOfMask(mask), runsOfMask(within), connectivity));
}

export function fillHolesPerSlice(mask: Mask): Mask {
  return maskOfRuns(fillHolesRuns(runsOfMask(mask), true));
}

export function fillHoles3d(mask: Mask): Mask {
  return maskOfRuns(fillHolesRuns(runsOfMask(mask), false));
}

export function dilate(mask: Mask, se: StructuringElement): Mask {
  return maskOfRuns(dilateRuns(runsOfMask(mask), se));
}

export function erode(mask: Mask, se: StructuringElement): Mask {
  return maskOfRuns(erodeRuns(runsOfMask(mask), se));
}

export function open(mask: Mask, se: StructuringElement): Mask {
  return maskOfRuns(openRuns(runsOfMask(mask), se));
}

export function close(mask: Mask, se: StructuringElement): Mask {
  return maskOfRuns(closeRuns(runsOfMask(mask), se));
}
