/**
 * Cumulative dose-volume histograms of contoured ROIs on a dose grid. Pure computation: no I/O.
 *
 * Model
 * - The ROI is the stack of its contour planes (RTSTRUCT convention, as in dicompyler-core): each plane
 *   stands for a slab of thickness T centred on it, T = the smallest distance between two of the ROI's
 *   planes. Within a plane, inside = the even-odd rule over all of that plane's contours, so holes,
 *   several islands and keyhole contours all work without knowing which contour is which.
 * - The dose is the trilinear interpolation of the grid values (dose voxel centres). For a contour
 *   plane the dose plane is interpolated linearly between the two dose frames around it, so contour
 *   planes between dose planes are handled, and non-uniform frame spacing too (frameOffsetsMm).
 * - Sampling: every dose voxel the plane touches is cut into N x N cells in-plane (N from
 *   `subSamples`, default: pitch <= 1 mm and N >= 2). Along each row of cells (at the cell centres'
 *   row position) the inside part is a set of exact spans: cells wholly inside weigh 1 and take the
 *   bilinear dose at their centre; a cell cut by a span's end weighs the covered fraction and takes
 *   the dose at the middle of the covered part. A cell weighs (sx/N)(sy/N)T mm³. Lengths along rows
 *   are therefore exact; across rows the error is under half a cell per boundary.
 * - Inside-test by scanlines: for each sub-sample row the crossings of the plane's edges (active-edge
 *   table, half-open rule) give spans, and the sub-samples of each span are walked directly: no
 *   point-in-polygon test per sample.
 * - ROIs partly outside the dose grid: a sub-sample is inside the grid when it lies within the dose
 *   voxels' extent (centres ± half a voxel; the outermost band takes the edge value). Sub-samples
 *   outside still count towards the volume, and the ROI is flagged `partial`. The DVH shape is then
 *   that of the part inside the grid, scaled to the whole volume: this is what dicompyler-core does for
 *   contour planes beyond the dose grid (calculate_full_volume), applied to the in-plane case as well.
 *
 * Differences from dicompyler-core 0.5.5 (dvhcalc.get_dvh with default arguments):
 * - it counts whole dose voxels whose centre is inside (no sub-sampling) and uses each voxel's dose;
 * - it takes the nearest dose plane when one is within 0.5 mm, and interpolates only otherwise;
 * - in-plane, it ignores the part of an ROI outside the dose grid (volume included);
 * - a single-plane ROI gets thickness 0 (volume 0); here it gets `singlePlaneThicknessMm`
 *   (default: the dose grid's frame spacing).
 * - bins: both use 0.01 Gy bins with bin b = [b, b+1) x 0.01 Gy; mean, min and max here are exact
 *   over the sub-samples, not bin centres or edges.
 */
import type { Contour, Grid } from '../geometry/types.js';

export const DVH_BIN_WIDTH_GY = 0.01;
/** Contour points may stray this far (mm) from their plane along the dose normal. */
const PLANARITY_TOLERANCE_MM = 0.05;
/** Plane positions are grouped on this grid (mm), as ROI planes are listed per slice. */
const PLANE_KEY_MM = 0.01;
/** Target in-plane sub-sample pitch for the default N. */
const DEFAULT_SUBSAMPLE_PITCH_MM = 1;

/** The dose the DVH is computed on; an RtDose (src/dicom/rt-dose.ts) fits. */
export interface DoseGrid {
  grid: Grid;
  /** Gy, index i + j*nx + k*nx*ny. */
  doseGy: Float32Array;
  /** Frame positions along grid.direction[2] in mm from the origin; default k x spacing. */
  frameOffsetsMm?: Float64Array;
}

export interface DvhRoi {
  number: number;
  name: string;
  /** Closed planar contours in patient mm (RTSTRUCT CLOSED_PLANAR; others are ignored by the caller). */
  contours: readonly Contour[];
}

export interface DvhOptions {
  /** Sub-samples per dose voxel along each in-plane axis. */
  subSamples?: number;
  /** Slab thickness of an ROI with a single plane (mm). Default: the dose frame spacing. */
  singlePlaneThicknessMm?: number;
}

/** A cumulative DVH in absolute volume, with the exact statistics of the samples behind it. */
export interface CumulativeDvh {
  binWidthGy: number;
  /** cumulativeCm3[b] = volume (cm³) receiving at least b x binWidthGy; the last entry is 0. */
  cumulativeCm3: Float64Array;
  /** Volume of the ROI (cm³), inside and outside the dose grid. */
  volumeCm3: number;
  meanGy: number;
  minGy: number;
  maxGy: number;
}

export interface Dvh extends CumulativeDvh {
  roiNumber: number;
  roiName: string;
  /** Some of the ROI lies outside the dose grid: its DVH describes the part inside. */
  partial: boolean;
  /** Fraction of the ROI's volume inside the dose grid (1 when not partial). */
  inGridFraction: number;
  planes: number;
  sliceThicknessMm: number;
  subSamples: number;
}

/** Suffix the output adds to the name of a partial ROI. */
export const PARTIAL_SUFFIX = '__partial';

export function dvhOutputName(dvh: Pick<Dvh, 'roiName' | 'partial'>): string {
  return dvh.partial ? dvh.roiName + PARTIAL_SUFFIX : dvh.roiName;
}

/** The dose grid with what every ROI needs precomputed once. */
export interface DoseField {
  readonly dose: DoseGrid;
  readonly offsets: Float64Array;
  readonly maxGy: number;
}

export function prepareDoseField(dose: DoseGrid): DoseField {
  const [nx, ny, nz] = dose.grid.dims;
  if (dose.doseGy.length !== nx * ny * nz) throw new RangeError(`dose has ${dose.doseGy.length} values; grid ${nx}x${ny}x${nz} needs ${nx * ny * nz}`);
  const offsets = dose.frameOffsetsMm ?? Float64Array.from({ length: nz }, (_, k) => k * dose.grid.spacingMm[2]);
  if (offsets.length !== nz) throw new RangeError(`frameOffsetsMm has ${offsets.length} values for ${nz} frames`);
  for (let k = 1; k < nz; k++) if (!(offsets[k] > offsets[k - 1])) throw new RangeError(`frameOffsetsMm must increase (frame ${k})`);
  let maxGy = 0;
  const d = dose.doseGy;
  for (let n = 0; n < d.length; n++) if (d[n] > maxGy) maxGy = d[n];
  return { dose, offsets, maxGy };
}

export function computeDvhs(dose: DoseGrid | DoseField, rois: readonly DvhRoi[], opts: DvhOptions = {}): Dvh[] {
  const field = 'offsets' in dose && 'maxGy' in dose ? (dose as DoseField) : prepareDoseField(dose as DoseGrid);
  return rois.map((roi) => computeDvh(field, roi, opts));
}

/** One plane of an ROI in dose-grid coordinates: u, v in voxel units (voxel centres at integers),
 *  w in mm along the dose k axis. */
interface RoiPlane {
  w: number;
  /** Edges as u0, v0, u1, v1 with v0 < v1 (horizontal edges dropped), sorted by v0. */
  edges: Float64Array;
  uMin: number;
  uMax: number;
  vMin: number;
  vMax: number;
}

export function computeDvh(field: DoseField, roi: DvhRoi, opts: DvhOptions = {}): Dvh {
  const g = field.dose.grid;
  const n = opts.subSamples ?? defaultSubSamples(g);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new RangeError(`subSamples must be an integer 1..64, got ${n}`);
  const planes = roiPlanes(g, roi);
  const thickness = planeThickness(planes, opts.singlePlaneThicknessMm ?? meanFrameSpacing(field));
  const acc = new Accumulator(field.maxGy);
  const sampler = new PlaneSampler(field, n, acc);
  for (const plane of planes) sampler.sample(plane);

  const sampleMm3 = (g.spacingMm[0] / n) * (g.spacingMm[1] / n) * thickness;
  const total = acc.inside + acc.outside;
  const volumeCm3 = (total * sampleMm3) / 1000;
  // The in-grid distribution stands for the whole ROI (see the file comment).
  const perCount = acc.inside > 0 ? volumeCm3 / acc.inside : 0;
  return {
    roiNumber: roi.number,
    roiName: roi.name,
    binWidthGy: DVH_BIN_WIDTH_GY,
    cumulativeCm3: acc.cumulative(perCount),
    volumeCm3,
    meanGy: acc.inside > 0 ? acc.sum / acc.inside : 0,
    minGy: acc.inside > 0 ? acc.min : 0,
    maxGy: acc.inside > 0 ? acc.max : 0,
    partial: acc.outside > 0,
    inGridFraction: total > 0 ? acc.inside / total : 0,
    planes: planes.length,
    sliceThicknessMm: thickness,
    subSamples: n,
  };
}

function defaultSubSamples(g: Grid): number {
  return Math.max(2, Math.ceil(Math.max(g.spacingMm[0], g.spacingMm[1]) / DEFAULT_SUBSAMPLE_PITCH_MM - 1e-9));
}

function meanFrameSpacing(field: DoseField): number {
  const o = field.offsets;
  return o.length > 1 ? (o[o.length - 1] - o[0]) / (o.length - 1) : field.dose.grid.spacingMm[2];
}

/** dicompyler-core's CalculatePlaneThickness: the smallest gap between consecutive planes. */
function planeThickness(planes: RoiPlane[], single: number): number {
  if (planes.length < 2) return single;
  let t = Infinity;
  for (let p = 1; p < planes.length; p++) t = Math.min(t, planes[p].w - planes[p - 1].w);
  return t;
}

/** Contours into dose-grid coordinates, grouped by plane and sorted along the dose k axis. */
function roiPlanes(g: Grid, roi: DvhRoi): RoiPlane[] {
  const [r, c, k] = g.direction;
  const [o0, o1, o2] = g.originMm;
  const [sx, sy] = g.spacingMm;
  const byKey = new Map<number, { w: number; edges: number[] }>();
  roi.contours.forEach((contour, index) => {
    const p = contour.points;
    const count = p.length / 3;
    if (count < 3) return; // a point or a line encloses nothing
    const u = new Float64Array(count);
    const v = new Float64Array(count);
    let wMin = Infinity;
    let wMax = -Infinity;
    for (let q = 0; q < count; q++) {
      const dx = p[3 * q] - o0;
      const dy = p[3 * q + 1] - o1;
      const dz = p[3 * q + 2] - o2;
      u[q] = (dx * r[0] + dy * r[1] + dz * r[2]) / sx;
      v[q] = (dx * c[0] + dy * c[1] + dz * c[2]) / sy;
      const w = dx * k[0] + dy * k[1] + dz * k[2];
      if (w < wMin) wMin = w;
      if (w > wMax) wMax = w;
    }
    if (wMax - wMin > PLANARITY_TOLERANCE_MM) {
      throw new Error(
        `ROI ${roi.number} "${roi.name}", contour ${index + 1}: not parallel to the dose planes (it spans ${(wMax - wMin).toFixed(2)} mm along the dose grid's normal); ` +
          'contours must lie in planes parallel to the dose frames (resample the dose to the image orientation)',
      );
    }
    const w = (wMin + wMax) / 2;
    const key = Math.round(w / PLANE_KEY_MM);
    let plane = byKey.get(key);
    if (!plane) byKey.set(key, (plane = { w: key * PLANE_KEY_MM, edges: [] }));
    for (let q = 0; q < count; q++) {
      const q1 = q + 1 === count ? 0 : q + 1;
      if (v[q] === v[q1]) continue; // horizontal edges never cross a scanline under the half-open rule
      if (v[q] < v[q1]) plane.edges.push(u[q], v[q], u[q1], v[q1]);
      else plane.edges.push(u[q1], v[q1], u[q], v[q]);
    }
  });
  return [...byKey.values()]
    .filter((p) => p.edges.length > 0)
    .sort((a, b) => a.w - b.w)
    .map((p) => sortedPlane(p.w, p.edges));
}

function sortedPlane(w: number, flat: number[]): RoiPlane {
  const m = flat.length / 4;
  const order = Array.from({ length: m }, (_, e) => e).sort((a, b) => flat[4 * a + 1] - flat[4 * b + 1]);
  const edges = new Float64Array(flat.length);
  let [uMin, uMax, vMin, vMax] = [Infinity, -Infinity, Infinity, -Infinity];
  order.forEach((e, at) => {
    for (let x = 0; x < 4; x++) edges[4 * at + x] = flat[4 * e + x];
    uMin = Math.min(uMin, flat[4 * e], flat[4 * e + 2]);
    uMax = Math.max(uMax, flat[4 * e], flat[4 * e + 2]);
    vMin = Math.min(vMin, flat[4 * e + 1]);
    vMax = Math.max(vMax, flat[4 * e + 3]);
  });
  return { w, edges, uMin, uMax, vMin, vMax };
}

/** Histogram of in-grid sub-samples (0.01 Gy bins) and the exact sum/min/max of their doses. */
class Accumulator {
  readonly counts: Float64Array;
  inside = 0;
  outside = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  constructor(maxGy: number) {
    this.counts = new Float64Array(Math.floor(maxGy / DVH_BIN_WIDTH_GY) + 2);
  }

  /** cumulative[b] = perCount x (samples in bins >= b), trimmed after the last non-empty bin. */
  cumulative(perCount: number): Float64Array {
    let last = this.counts.length - 1;
    while (last >= 0 && this.counts[last] === 0) last--;
    const out = new Float64Array(last + 2);
    let run = 0;
    for (let b = last; b >= 0; b--) {
      run += this.counts[b];
      out[b] = run * perCount;
    }
    return out;
  }
}

/** Walks the sub-samples of one ROI plane at a time (see the file comment). Scratch buffers are reused. */
class PlaneSampler {
  private readonly nx: number;
  private readonly ny: number;
  /** Dose plane at the ROI plane's position (z-interpolated), full grid size. */
  private readonly plane: Float32Array;
  /** Dose along the current sub-sample row (y-interpolated from `plane`). */
  private readonly line: Float32Array;
  /** Grid columns [iLo, iHi] and rows [jLo, jHi] the current ROI plane can reach (interpolation
   *  neighbours included): only these are interpolated. */
  private iLo = 0;
  private iHi = 0;
  private jLo = 0;
  private jHi = 0;
  private active: Int32Array = new Int32Array(64);
  private crossings: Float64Array = new Float64Array(64);

  constructor(
    private readonly field: DoseField,
    private readonly n: number,
    private readonly acc: Accumulator,
  ) {
    [this.nx, this.ny] = field.dose.grid.dims;
    this.plane = new Float32Array(this.nx * this.ny);
    this.line = new Float32Array(this.nx);
  }

  sample(p: RoiPlane): void {
    const { n, nx, ny } = this;
    this.iLo = clamp(Math.floor(p.uMin) - 1, 0, nx - 1);
    this.iHi = clamp(Math.ceil(p.uMax) + 1, 0, nx - 1);
    this.jLo = clamp(Math.floor(p.vMin) - 1, 0, ny - 1);
    this.jHi = clamp(Math.ceil(p.vMax) + 1, 0, ny - 1);
    const inZ = this.interpolatePlane(p.w);
    // Sub-sample row q sits at v = (q + 0.5)/n - 0.5; rows inside the grid are 0 <= q < ny*n.
    const qFirst = Math.ceil((p.vMin + 0.5) * n - 0.5);
    const qLast = Math.ceil((p.vMax + 0.5) * n - 0.5) - 1;
    const sEnd = nx * n;
    const edges = p.edges;
    const edgeCount = edges.length / 4;
    let nextEdge = 0;
    let activeCount = 0;
    for (let q = qFirst; q <= qLast; q++) {
      const y = (q + 0.5) / n - 0.5;
      // Active edge table: add edges starting at or before y, drop those ending at or before y.
      while (nextEdge < edgeCount && edges[4 * nextEdge + 1] <= y) {
        if (activeCount === this.active.length) this.active = grow(this.active);
        this.active[activeCount++] = nextEdge++;
      }
      let kept = 0;
      let cross = 0;
      for (let a = 0; a < activeCount; a++) {
        const e = this.active[a];
        const v0 = edges[4 * e + 1];
        const v1 = edges[4 * e + 3];
        if (v1 <= y) continue;
        this.active[kept++] = e;
        if (cross === this.crossings.length) this.crossings = grow(this.crossings);
        const u0 = edges[4 * e];
        this.crossings[cross++] = u0 + ((y - v0) / (v1 - v0)) * (edges[4 * e + 2] - u0);
      }
      activeCount = kept;
      if (cross < 2) continue;
      const xs = this.crossings.subarray(0, cross).sort();
      const rowInGrid = inZ && q >= 0 && q < ny * n;
      if (rowInGrid) this.interpolateLine(y);
      for (let c = 0; c + 1 < cross; c += 2) {
        // In cell units X = (u + 0.5) n, sub-sample cell s covers [s, s + 1) and the grid [0, sEnd).
        const xa = (xs[c] + 0.5) * n;
        const xb = (xs[c + 1] + 0.5) * n;
        if (!rowInGrid) {
          this.acc.outside += xb - xa;
          continue;
        }
        const lo = xa < 0 ? 0 : xa;
        const hi = xb > sEnd ? sEnd : xb;
        if (hi <= lo) {
          this.acc.outside += xb - xa;
          continue;
        }
        this.acc.outside += xb - xa - (hi - lo);
        this.walkSpan(lo, hi);
      }
    }
  }

  /** Histograms the span [lo, hi) (cell units, inside the grid) of the current row. Cells wholly
   *  inside weigh 1 and take the dose at their centre; the two end cells weigh the covered fraction
   *  and take the dose at the middle of the covered part, so span lengths along rows are exact. */
  private walkSpan(lo: number, hi: number): void {
    const first = Math.floor(lo);
    const last = Math.ceil(hi) - 1;
    if (first === last) {
      this.add(hi - lo, (lo + hi) / 2);
      return;
    }
    this.add(first + 1 - lo, (lo + first + 1) / 2);
    this.walkFullCells(first + 1, last);
    this.add(hi - last, (last + hi) / 2);
  }

  /** One partly covered cell: weight in cells, position in cell units. */
  private add(weight: number, at: number): void {
    if (weight <= 0) return;
    const d = this.doseAt(at / this.n - 0.5);
    const acc = this.acc;
    const bin = d > 0 ? (d / DVH_BIN_WIDTH_GY) | 0 : 0;
    acc.counts[bin] += weight;
    acc.inside += weight;
    acc.sum += weight * d;
    if (d < acc.min) acc.min = d;
    if (d > acc.max) acc.max = d;
  }

  /** Dose on the current row at column position x (voxel units), linear between voxel centres. */
  private doseAt(x: number): number {
    const { nx, line } = this;
    if (x < 0) x = 0;
    else if (x > nx - 1) x = nx - 1;
    let i = x | 0;
    if (i === nx - 1 && nx > 1) i = nx - 2;
    const d0 = line[i];
    return nx > 1 ? d0 + (x - i) * (line[i + 1] - d0) : d0;
  }

  /** Cells s in [lo, hi) of the current row, all wholly inside the span and the grid. */
  private walkFullCells(lo: number, hi: number): void {
    if (hi <= lo) return;
    const { n, nx, line } = this;
    const acc = this.acc;
    const counts = acc.counts;
    const scale = 1 / DVH_BIN_WIDTH_GY;
    let sum = 0;
    let min = acc.min;
    let max = acc.max;
    for (let s = lo; s < hi; s++) {
      let x = (s + 0.5) / n - 0.5;
      if (x < 0) x = 0;
      else if (x > nx - 1) x = nx - 1;
      let i = x | 0;
      if (i === nx - 1 && nx > 1) i = nx - 2;
      const d0 = line[i];
      const d = nx > 1 ? d0 + (x - i) * (line[i + 1] - d0) : d0;
      counts[d > 0 ? (d * scale) | 0 : 0]++;
      sum += d;
      if (d < min) min = d;
      if (d > max) max = d;
    }
    acc.inside += hi - lo;
    acc.sum += sum;
    acc.min = min;
    acc.max = max;
  }

  /** Fills `plane` with the dose at distance w (mm) along the k axis; false when w is outside the
   *  grid's extent (the first and last frames each cover half a frame spacing beyond their centre). */
  private interpolatePlane(w: number): boolean {
    const o = this.field.offsets;
    const nz = o.length;
    const halfFirst = nz > 1 ? (o[1] - o[0]) / 2 : this.field.dose.grid.spacingMm[2] / 2;
    const halfLast = nz > 1 ? (o[nz - 1] - o[nz - 2]) / 2 : halfFirst;
    if (w < o[0] - halfFirst - 1e-6 || w > o[nz - 1] + halfLast + 1e-6) return false;
    if (w <= o[0] || nz === 1) {
      this.copyFrames(0, 0, 0);
      return true;
    }
    if (w >= o[nz - 1]) {
      this.copyFrames(nz - 1, nz - 1, 0);
      return true;
    }
    let k = upperBound(o, w) - 1; // o[k] <= w < o[k+1]
    if (k > nz - 2) k = nz - 2;
    this.copyFrames(k, k + 1, (w - o[k]) / (o[k + 1] - o[k]));
    return true;
  }

  /** plane = (1 - f) x frame ka + f x frame kb over the current region. */
  private copyFrames(ka: number, kb: number, f: number): void {
    const { nx, ny, plane, iLo, iHi } = this;
    const d = this.field.dose.doseGy;
    for (let j = this.jLo; j <= this.jHi; j++) {
      const row = j * nx;
      const a = ka * nx * ny + row;
      const b = kb * nx * ny + row;
      if (f === 0) {
        for (let i = iLo; i <= iHi; i++) plane[row + i] = d[a + i];
      } else {
        for (let i = iLo; i <= iHi; i++) plane[row + i] = d[a + i] + f * (d[b + i] - d[a + i]);
      }
    }
  }

  /** Fills `line` with the dose along row position y (voxel units, clamped to the grid). */
  private interpolateLine(y: number): void {
    const { nx, ny, plane, line } = this;
    if (y < 0) y = 0;
    else if (y > ny - 1) y = ny - 1;
    let j = y | 0;
    if (j === ny - 1 && ny > 1) j = ny - 2;
    const f = ny > 1 ? y - j : 0;
    const a = j * nx;
    const b = a + nx;
    const { iLo, iHi } = this;
    if (f === 0) {
      for (let i = iLo; i <= iHi; i++) line[i] = plane[a + i];
      return;
    }
    for (let i = iLo; i <= iHi; i++) line[i] = plane[a + i] + f * (plane[b + i] - plane[a + i]);
  }
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/** First index whose value is > x (values increasing). */
function upperBound(values: Float64Array, x: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (values[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function grow<T extends Int32Array | Float64Array>(a: T): T {
  const bigger = new (a.constructor as new (n: number) => T)(a.length * 2);
  bigger.set(a);
  return bigger;
}
