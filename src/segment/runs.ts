/**
 * Run-length masks: a binary mask stored as the runs of set voxels along i, row by row. A thorax
 * CT's body is a few runs per row, so a mask of 52 M voxels takes a few hundred thousand runs (a few
 * MB instead of 52), and the segmentation's passes cost per run instead of per voxel. Pure computation.
 *
 * Row r = j + k * ny of the mask's grid holds runs rowFirst[r] .. rowFirst[r + 1] - 1; run n covers
 * i in [start[n], end[n]). Within a row runs are sorted and separated by at least one clear voxel
 * (touching runs are merged), so the representation of a mask is unique.
 */
import { voxelCount, type Grid, type Mask, type Volume } from '../geometry/types.js';
import { boxDims, cropGrid, skipOnes, skipZeros, wordView, type Box, type Dims } from './mask.js';

export interface RunMask {
  grid: Grid;
  /** ny * nz + 1 entries; the run count is rowFirst[ny * nz]. */
  rowFirst: Int32Array;
  start: Int32Array;
  end: Int32Array;
}

/** Collects runs row by row, rows in increasing order, merging a run that touches the previous one. */
export class RunBuilder {
  private start: Int32Array;
  private end: Int32Array;
  private n = 0;
  private row = -1;
  private readonly rowFirst: Int32Array;

  constructor(
    private readonly grid: Grid,
    capacity = 1024,
  ) {
    this.rowFirst = new Int32Array(grid.dims[1] * grid.dims[2] + 1);
    this.start = new Int32Array(Math.max(16, capacity));
    this.end = new Int32Array(this.start.length);
  }

  /** Moves to row r (>= the current row); the rows in between stay empty. */
  toRow(r: number): void {
    const rowFirst = this.rowFirst;
    while (this.row < r) rowFirst[++this.row] = this.n;
  }

  /** Adds [s, e) to the current row; runs must come in increasing order of s. */
  add(s: number, e: number): void {
    const n = this.n;
    if (n > this.rowFirst[this.row] && s <= this.end[n - 1]) {
      if (e > this.end[n - 1]) this.end[n - 1] = e;
      return;
    }
    if (n === this.start.length) this.growTo(n * 2);
    this.start[n] = s;
    this.end[n] = e;
    this.n = n + 1;
  }

  /** Adds [s, e) as a run of its own even if it touches the previous one (runs of different labels). */
  addSeparate(s: number, e: number): void {
    const n = this.n;
    if (n === this.start.length) this.growTo(n * 2);
    this.start[n] = s;
    this.end[n] = e;
    this.n = n + 1;
  }

  finish(): RunMask {
    this.toRow(this.rowFirst.length - 1);
    return { grid: this.grid, rowFirst: this.rowFirst, start: this.start.subarray(0, this.n), end: this.end.subarray(0, this.n) };
  }

  private growTo(size: number): void {
    const start = new Int32Array(size);
    const end = new Int32Array(size);
    start.set(this.start);
    end.set(this.end);
    this.start = start;
    this.end = end;
  }
}

export function runCount(m: RunMask): number {
  return m.rowFirst[m.rowFirst.length - 1];
}

export function emptyRuns(grid: Grid): RunMask {
  return new RunBuilder(grid, 16).finish();
}

/** Number of set voxels. */
export function voxelsOf(m: RunMask): number {
  let sum = 0;
  for (let n = 0; n < m.start.length; n++) sum += m.end[n] - m.start[n];
  return sum;
}

/** Smallest box holding every set voxel, or null when the mask is empty. */
export function runsBox(m: RunMask): Box | null {
  const [nx, ny] = m.grid.dims;
  const rows = m.rowFirst.length - 1;
  let lo0 = nx, hi0 = 0, lo1 = ny, hi1 = 0, lo2 = -1, hi2 = 0;
  for (let r = 0; r < rows; r++) {
    const first = m.rowFirst[r];
    const last = m.rowFirst[r + 1] - 1;
    if (last < first) continue;
    const j = r % ny;
    const k = (r - j) / ny;
    if (m.start[first] < lo0) lo0 = m.start[first];
    if (m.end[last] > hi0) hi0 = m.end[last];
    if (j < lo1) lo1 = j;
    if (j + 1 > hi1) hi1 = j + 1;
    if (lo2 < 0) lo2 = k;
    hi2 = k + 1;
  }
  return lo2 < 0 ? null : { lo: [lo0, lo1, lo2], hi: [hi0, hi1, hi2] };
}

// ---------------------------------------------------------------------------------------------
// Conversions

/** Runs of the non-zero voxels of a mask, skipping clear stretches four bytes at a time. */
export function runsOfMask(mask: Mask): RunMask {
  const { data, grid } = mask;
  const [nx, ny, nz] = grid.dims;
  const words = wordView(data);
  const b = new RunBuilder(grid, 4096);
  for (let r = 0; r < ny * nz; r++) {
    b.toRow(r);
    const base = r * nx;
    let i = skipZeros(data, words, base, 0, nx);
    while (i < nx) {
      const s = i;
      i = skipOnes(data, words, base, i, nx);
      b.add(s, i);
      i = skipZeros(data, words, base, i, nx);
    }
  }
  return b.finish();
}

/** The mask as bytes (1 set, 0 clear). */
export function maskOfRuns(m: RunMask): Mask {
  const data = new Uint8Array(voxelCount(m.grid));
  paintRuns(m, data, 1);
  return { grid: m.grid, data };
}

/** Writes `value` over every set voxel of `m` into a volume-sized array. */
export function paintRuns(m: RunMask, out: Uint8Array, value: number): Uint8Array {
  const nx = m.grid.dims[0];
  const rows = m.rowFirst.length - 1;
  for (let r = 0; r < rows; r++) {
    for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) out.fill(value, r * nx + m.start[n], r * nx + m.end[n]);
  }
  return out;
}

/** Slice k as bytes into `out` (nx * ny bytes), cleared first. */
export function paintSlice(m: RunMask, k: number, out: Uint8Array, value = 1): void {
  const [nx, ny] = m.grid.dims;
  out.fill(0);
  for (let j = 0; j < ny; j++) {
    const r = k * ny + j;
    for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) out.fill(value, j * nx + m.start[n], j * nx + m.end[n]);
  }
}

/** The part of `m` inside `box`, on the box's own grid (cropGrid). Runs keep their order and stay
 *  separate (labelled runs keep their meaning); those wholly outside the box are dropped. */
export function cropRuns(m: RunMask, box: Box): RunMask {
  const ny = m.grid.dims[1];
  const [cx, cy, cz] = boxDims(box);
  const b = new RunBuilder(cropGrid(m.grid, box), runCount(m));
  for (let k = 0; k < cz; k++) {
    for (let j = 0; j < cy; j++) {
      b.toRow(k * cy + j);
      const r = (box.lo[2] + k) * ny + box.lo[1] + j;
      for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) {
        const s = Math.max(m.start[n] - box.lo[0], 0);
        const e = Math.min(m.end[n] - box.lo[0], cx);
        if (s < e) b.addSeparate(s, e);
      }
    }
  }
  return b.finish();
}

/** A mask on a box of `grid` (as cropRuns makes) placed back on `grid`, runs in the same order. */
export function uncropRuns(m: RunMask, box: Box, grid: Grid): RunMask {
  const ny = grid.dims[1];
  const [, cy, cz] = boxDims(box);
  const b = new RunBuilder(grid, runCount(m));
  for (let k = 0; k < cz; k++) {
    for (let j = 0; j < cy; j++) {
      b.toRow((box.lo[2] + k) * ny + box.lo[1] + j);
      const r = k * cy + j;
      for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) b.addSeparate(m.start[n] + box.lo[0], m.end[n] + box.lo[0]);
    }
  }
  return b.finish();
}

// ---------------------------------------------------------------------------------------------
// Thresholds

/** Voxels of `ct` strictly above (or below) `hu`, in `box` (default: the whole volume), as runs on
 *  the box's grid. */
export function thresholdRuns(ct: Volume<Int16Array>, side: 'above' | 'below', hu: number, box?: Box): RunMask {
  const [nx, ny] = ct.grid.dims;
  const b0: Box = box ?? { lo: [0, 0, 0], hi: [...ct.grid.dims] as Dims };
  const [cx, cy, cz] = boxDims(b0);
  const b = new RunBuilder(box ? cropGrid(ct.grid, box) : ct.grid, 4096);
  const d = ct.data;
  for (let k = 0; k < cz; k++) {
    for (let j = 0; j < cy; j++) {
      b.toRow(k * cy + j);
      const base = ((b0.lo[2] + k) * ny + b0.lo[1] + j) * nx + b0.lo[0];
      if (side === 'above') scanAbove(d, base, 0, cx, hu, b);
      else scanBelow(d, base, 0, cx, hu, b);
    }
  }
  return b.finish();
}

/** Voxels of `ct` strictly above (or below) `hu` among the set voxels of `within`, which lies on a
 *  box of the CT's grid (`box`, default the whole volume): only those voxels are read. */
export function thresholdWithin(ct: Volume<Int16Array>, side: 'above' | 'below', hu: number, within: RunMask, box?: Box): RunMask {
  const [nx, ny] = ct.grid.dims;
  const lo = box?.lo ?? [0, 0, 0];
  const [, cy, cz] = within.grid.dims;
  const b = new RunBuilder(within.grid, runCount(within));
  const d = ct.data;
  for (let k = 0; k < cz; k++) {
    for (let j = 0; j < cy; j++) {
      const r = k * cy + j;
      b.toRow(r);
      const base = ((lo[2] + k) * ny + lo[1] + j) * nx + lo[0];
      for (let n = within.rowFirst[r]; n < within.rowFirst[r + 1]; n++) {
        if (side === 'above') scanAbove(d, base, within.start[n], within.end[n], hu, b);
        else scanBelow(d, base, within.start[n], within.end[n], hu, b);
      }
    }
  }
  return b.finish();
}

/**
 * Adds the runs of d[base + i] > hu for i in [from, to). Long stretches are skipped eight voxels at
 * a time with one test: v > hu exactly when v - (hu + 1) has a clear sign bit, so the AND of eight
 * such differences is negative when none of the eight is above, and their OR is non-negative when
 * all are.
 */
function scanAbove(d: Int16Array, base: number, from: number, to: number, hu: number, b: RunBuilder): void {
  const h = hu + 1;
  let i = from;
  while (i < to) {
    for (let o = base + i; i + 8 <= to; i += 8, o += 8) {
      if (((d[o] - h) & (d[o + 1] - h) & (d[o + 2] - h) & (d[o + 3] - h) & (d[o + 4] - h) & (d[o + 5] - h) & (d[o + 6] - h) & (d[o + 7] - h)) >= 0) break;
    }
    while (i < to && d[base + i] <= hu) i++;
    if (i === to) return;
    const s = i;
    for (let o = base + i; i + 8 <= to; i += 8, o += 8) {
      if (((d[o] - h) | (d[o + 1] - h) | (d[o + 2] - h) | (d[o + 3] - h) | (d[o + 4] - h) | (d[o + 5] - h) | (d[o + 6] - h) | (d[o + 7] - h)) < 0) break;
    }
    while (i < to && d[base + i] > hu) i++;
    b.add(s, i);
  }
}

/** Adds the runs of d[base + i] < hu for i in [from, to), as scanAbove does (v < hu: v - hu is negative). */
function scanBelow(d: Int16Array, base: number, from: number, to: number, hu: number, b: RunBuilder): void {
  let i = from;
  while (i < to) {
    for (let o = base + i; i + 8 <= to; i += 8, o += 8) {
      if (((d[o] - hu) | (d[o + 1] - hu) | (d[o + 2] - hu) | (d[o + 3] - hu) | (d[o + 4] - hu) | (d[o + 5] - hu) | (d[o + 6] - hu) | (d[o + 7] - hu)) < 0) break;
    }
    while (i < to && d[base + i] >= hu) i++;
    if (i === to) return;
    const s = i;
    for (let o = base + i; i + 8 <= to; i += 8, o += 8) {
      if (((d[o] - hu) & (d[o + 1] - hu) & (d[o + 2] - hu) & (d[o + 3] - hu) & (d[o + 4] - hu) & (d[o + 5] - hu) & (d[o + 6] - hu) & (d[o + 7] - hu)) >= 0) break;
    }
    while (i < to && d[base + i] < hu) i++;
    b.add(s, i);
  }
}

// ---------------------------------------------------------------------------------------------
// Set operations (both masks on the same grid)

type RowOp = (a: RunMask, ra: number, b: RunMask, rb: number, out: RunBuilder) => void;

function rowwise(a: RunMask, b: RunMask, op: RowOp, capacity: number): RunMask {
  if (a.grid.dims.some((d, n) => d !== b.grid.dims[n])) throw new RangeError(`run masks on different grids: ${a.grid.dims.join('x')} and ${b.grid.dims.join('x')}`);
  const out = new RunBuilder(a.grid, capacity);
  const rows = a.rowFirst.length - 1;
  for (let r = 0; r < rows; r++) {
    out.toRow(r);
    op(a, r, b, r, out);
  }
  return out.finish();
}

export function intersectRuns(a: RunMask, b: RunMask): RunMask {
  return rowwise(a, b, intersectRow, Math.min(runCount(a), runCount(b)) + 16);
}

/** a and not b. */
export function subtractRuns(a: RunMask, b: RunMask): RunMask {
  return rowwise(a, b, subtractRow, runCount(a) + runCount(b) + 16);
}

export function unionRuns(a: RunMask, b: RunMask): RunMask {
  return rowwise(a, b, unionRow, runCount(a) + runCount(b) + 16);
}

function intersectRow(a: RunMask, ra: number, b: RunMask, rb: number, out: RunBuilder): void {
  let p = a.rowFirst[ra];
  const pEnd = a.rowFirst[ra + 1];
  let q = b.rowFirst[rb];
  const qEnd = b.rowFirst[rb + 1];
  while (p < pEnd && q < qEnd) {
    const s = a.start[p] > b.start[q] ? a.start[p] : b.start[q];
    const e = a.end[p] < b.end[q] ? a.end[p] : b.end[q];
    if (s < e) out.add(s, e);
    if (a.end[p] < b.end[q]) p++;
    else q++;
  }
}

function subtractRow(a: RunMask, ra: number, b: RunMask, rb: number, out: RunBuilder): void {
  let q = b.rowFirst[rb];
  const qEnd = b.rowFirst[rb + 1];
  for (let p = a.rowFirst[ra]; p < a.rowFirst[ra + 1]; p++) {
    let s = a.start[p];
    const e = a.end[p];
    while (q < qEnd && b.end[q] <= s) q++;
    for (let t = q; t < qEnd && b.start[t] < e; t++) {
      if (b.start[t] > s) out.add(s, b.start[t]);
      if (b.end[t] > s) s = b.end[t];
    }
    if (s < e) out.add(s, e);
  }
}

function unionRow(a: RunMask, ra: number, b: RunMask, rb: number, out: RunBuilder): void {
  let p = a.rowFirst[ra];
  const pEnd = a.rowFirst[ra + 1];
  let q = b.rowFirst[rb];
  const qEnd = b.rowFirst[rb + 1];
  while (p < pEnd || q < qEnd) {
    if (q >= qEnd || (p < pEnd && a.start[p] <= b.start[q])) {
      out.add(a.start[p], a.end[p]);
      p++;
    } else {
      out.add(b.start[q], b.end[q]);
      q++;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Labels

/** A mask whose runs carry labels (1..255): several masks in one, e.g. the two lungs. Runs of
 *  different labels may touch (so may runs of one label, after growLabelRuns); runsWithLabel gives
 *  one label's mask in the canonical form. */
export interface LabelledRunMask extends RunMask {
  /** Label of each run. */
  label: Uint8Array;
}

/** The runs of one label, as a plain mask. */
export function runsWithLabel(m: LabelledRunMask, label: number): RunMask {
  const b = new RunBuilder(m.grid, runCount(m));
  const rows = m.rowFirst.length - 1;
  for (let r = 0; r < rows; r++) {
    b.toRow(r);
    for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) if (m.label[n] === label) b.add(m.start[n], m.end[n]);
  }
  return b.finish();
}

/** Runs of the non-zero labels of a label array (runs split where the label changes). */
export function runsOfLabels(labels: Uint8Array, grid: Grid): LabelledRunMask {
  const [nx, ny, nz] = grid.dims;
  const words = wordView(labels);
  const b = new RunBuilder(grid, 4096);
  let label = new Uint8Array(4096);
  let n = 0;
  for (let r = 0; r < ny * nz; r++) {
    b.toRow(r);
    const base = r * nx;
    let i = skipZeros(labels, words, base, 0, nx);
    while (i < nx) {
      const value = labels[base + i];
      const s = i;
      while (i < nx && labels[base + i] === value) i++;
      // Not RunBuilder.add's merge: neighbouring runs of different labels must stay apart.
      b.addSeparate(s, i);
      if (n === label.length) {
        const bigger = new Uint8Array(n * 2);
        bigger.set(label);
        label = bigger;
      }
      label[n++] = value;
      i = skipZeros(labels, words, base, i, nx);
    }
  }
  return { ...b.finish(), label: label.subarray(0, n) };
}

export interface RunLabelStats {
  /** Voxel count per label 0..count (index 0 unused). */
  voxels: number[];
  /** Mean voxel index (i, j, k) per label; null for an empty label. */
  centroidVoxel: ([number, number, number] | null)[];
}

/** Sizes and centroids (in voxel indices) of the labels 1..count. */
export function runLabelStats(m: LabelledRunMask, count: number): RunLabelStats {
  const ny = m.grid.dims[1];
  const voxels = new Array<number>(count + 1).fill(0);
  const sum = Array.from({ length: count + 1 }, () => [0, 0, 0]);
  const rows = m.rowFirst.length - 1;
  for (let r = 0; r < rows; r++) {
    const j = r % ny;
    const k = (r - j) / ny;
    for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) {
      const l = m.label[n];
      if (l > count) continue;
      const len = m.end[n] - m.start[n];
      voxels[l] += len;
      sum[l][0] += ((m.start[n] + m.end[n] - 1) * len) / 2;
      sum[l][1] += j * len;
      sum[l][2] += k * len;
    }
  }
  return {
    voxels,
    centroidVoxel: voxels.map((c, l) => (c === 0 || l === 0 ? null : [sum[l][0] / c, sum[l][1] / c, sum[l][2] / c])),
  };
}
