/**
 * Binary mask <-> RTSTRUCT CLOSED_PLANAR contours. Pure computation, no I/O.
 *
 * maskToContours traces the boundary of the set of foreground voxels along voxel edges (half a
 * voxel from the centres), so rasterising the result with the even-odd rule at voxel centres
 * (contoursToMask) gives the mask back exactly when toleranceMm = 0, and within the tolerance
 * otherwise. In voxel (i, j) space outer boundaries run counter-clockwise, holes clockwise.
 *
 * Saddle corners (two diagonal foreground voxels, the other two background) use 4-connectivity of
 * the foreground: the tracer turns left, hugging each voxel, so diagonal neighbours become separate
 * contours that share the corner point. Polygons never self-intersect.
 */
import { patientToVoxel, voxelToPatient, type Contour, type Grid, type Mask, type Vec3 } from './types.js';

/** Default Douglas-Peucker tolerance as a fraction of the smaller in-plane spacing (well under a voxel). */
export const DEFAULT_TOLERANCE_FRACTION = 0.2;

export interface MaskToContoursOptions {
  /** Douglas-Peucker tolerance in mm. 0 keeps every corner (only collinear points are dropped). */
  toleranceMm?: number;
}

/** A contour with an explicit slice index (points are still patient mm triplets). */
export interface SliceContour {
  k: number;
  points: Float64Array;
}

export type SkipReason = 'outside' | 'degenerate';

export interface ContoursToMaskOptions {
  /** Called for each input contour that was ignored: slice outside the grid, < 3 points or non-finite. */
  onSkip?: (index: number, reason: SkipReason) => void;
}

// ---------------------------------------------------------------------------------------------
// Shared: affine maps derived from the grid functions in types.ts (so the hot loops stay scalar).

/** 12 coefficients of p = o + x*a + y*b + z*c, sampled from an affine function. */
type Affine = Float64Array;

function affineOf(f: (x: number, y: number, z: number) => Vec3): Affine {
  const o = f(0, 0, 0);
  const m = new Float64Array(12);
  m.set(o, 0);
  [f(1, 0, 0), f(0, 1, 0), f(0, 0, 1)].forEach((p, n) => m.set([p[0] - o[0], p[1] - o[1], p[2] - o[2]], 3 + 3 * n));
  return m;
}

function applyAffine(m: Affine, x: number, y: number, z: number, out: Float64Array, at: number): void {
  out[at] = m[0] + x * m[3] + y * m[6] + z * m[9];
  out[at + 1] = m[1] + x * m[4] + y * m[7] + z * m[10];
  out[at + 2] = m[2] + x * m[5] + y * m[8] + z * m[11];
}

// ---------------------------------------------------------------------------------------------
// maskToContours

// Directions in voxel space, counter-clockwise order: 0 = +i, 1 = +j, 2 = -i, 3 = -j. left(d) = (d+1)&3.
const DI = [1, 0, -1, 0];
const DJ = [0, 1, 0, -1];

/**
 * Outgoing boundary edges at a corner, by the foreground of its 4 voxels
 * (bit 1 = below-left, 2 = below-right, 4 = above-right, 8 = above-left). Foreground stays on the left.
 */
const OUT_EDGES = (() => {
  const t = new Uint8Array(16);
  for (let c = 0; c < 16; c++) {
    const bl = c & 1, br = c & 2, tr = c & 4, tl = c & 8;
    t[c] = (tr && !br ? 1 : 0) | (tl && !tr ? 2 : 0) | (bl && !tl ? 4 : 0) | (br && !bl ? 8 : 0);
  }
  return t;
})();

const lowestBit = (x: number): number => 31 - Math.clz32(x & -x);

/**
 * Traces the voxel-edge boundary rings of one slice. Corner (ci, cj) sits at voxel (ci-0.5, cj-0.5).
 * The corners with boundary edges are marked first, from a byte mask or from runs, and listed in
 * scan order (cj, then ci); rings start at the first listed corner with an unused edge.
 */
class SliceTracer {
  private readonly w: number;
  /** Per corner: low nibble = unused outgoing edges, high nibble = all outgoing edges. */
  private readonly rem: Uint8Array;
  /** The marked corners of the slice being traced, in scan order. */
  private corners = new Int32Array(1024);
  private cornerCount = 0;
  private buf = new Int32Array(1024);

  constructor(
    private readonly nx: number,
    private readonly ny: number,
  ) {
    this.w = nx + 1;
    this.rem = new Uint8Array((nx + 1) * (ny + 1));
  }

  /** Rings of corner coordinates (ci, cj pairs, turning points only) of the slice at data offset `off`. */
  traceBytes(data: Uint8Array, off: number): Int32Array[] {
    const box = sliceBox(data, off, this.nx, this.ny);
    if (!box) return [];
    this.markEdges(data, off, box);
    return this.traceMarked();
  }

  /** The same for slice k of a run-length mask: the work follows the runs, not the slice's area. */
  traceRuns(m: RowRuns, k: number): Int32Array[] {
    this.markRunEdges(m, k);
    return this.traceMarked();
  }

  private traceMarked(): Int32Array[] {
    const rings: Int32Array[] = [];
    const rem = this.rem;
    for (let n = 0; n < this.cornerCount; n++) {
      const c = this.corners[n];
      while (rem[c] & 15) rings.push(this.traceRing(c));
    }
    for (let n = 0; n < this.cornerCount; n++) rem[this.corners[n]] = 0;
    this.cornerCount = 0;
    return rings;
  }

  private mark(c: number, code: number): void {
    const out = OUT_EDGES[code];
    this.rem[c] = out | (out << 4);
    if (this.cornerCount === this.corners.length) {
      const bigger = new Int32Array(this.corners.length * 2);
      bigger.set(this.corners);
      this.corners = bigger;
    }
    this.corners[this.cornerCount++] = c;
  }

  /** Marching-squares case of every corner in the bounding box -> outgoing edges. */
  private markEdges(data: Uint8Array, off: number, [i0, i1, j0, j1]: number[]): void {
    const nx = this.nx;
    for (let cj = j0; cj <= j1 + 1; cj++) {
      const below = cj > j0 ? off + (cj - 1) * nx : -1;
      const above = cj <= j1 ? off + cj * nx : -1;
      let c = cj * this.w + i0;
      for (let ci = i0; ci <= i1 + 1; ci++, c++) {
        const l = ci > i0, r = ci <= i1;
        let code = 0;
        if (below >= 0) code |= (l && data[below + ci - 1] ? 1 : 0) | (r && data[below + ci] ? 2 : 0);
        if (above >= 0) code |= (r && data[above + ci] ? 4 : 0) | (l && data[above + ci - 1] ? 8 : 0);
        if (code !== 0 && code !== 15) this.mark(c, code);
      }
    }
  }

  /**
   * Marks the corners of slice k from its runs. Along a corner row, between voxel rows B = cj-1 and
   * A = cj, the pair (B(i), A(i)) only changes at run ends: a corner is on the boundary where the
   * pair changes, and everywhere along a stretch where exactly one of the two rows is set.
   */
  private markRunEdges(m: RowRuns, k: number): void {
    const { ny, w } = this;
    const { rowFirst, start, end } = m;
    for (let cj = 0; cj <= ny; cj++) {
      // Runs of the row below (b..bEnd) and above (a..aEnd); an out-of-slice row has none.
      let b = cj > 0 ? rowFirst[k * ny + cj - 1] : 0;
      const bEnd = cj > 0 ? rowFirst[k * ny + cj] : 0;
      let a = cj < ny ? rowFirst[k * ny + cj] : 0;
      const aEnd = cj < ny ? rowFirst[k * ny + cj + 1] : 0;
      if (a === aEnd && b === bEnd) continue;
      let inB = 0;
      let inA = 0;
      let last = -1; // position of the previous breakpoint
      const base = cj * w;
      while (a < aEnd || b < bEnd) {
        // Next breakpoint: the nearest run boundary in either row.
        const nb = b < bEnd ? (inB ? end[b] : start[b]) : Infinity;
        const na = a < aEnd ? (inA ? end[a] : start[a]) : Infinity;
        const p = nb < na ? nb : na;
        if (inA !== inB) for (let ci = last + 1; ci < p; ci++) this.mark(base + ci, inB * 3 + inA * 12);
        let nextB = inB;
        let nextA = inA;
        if (nb === p) {
          nextB = 1 - inB;
          if (inB) b++;
        }
        if (na === p) {
          nextA = 1 - inA;
          if (inA) a++;
        }
        // bl = B(p-1), br = B(p), tr = A(p), tl = A(p-1).
        this.mark(base + p, inB | (nextB << 1) | (nextA << 2) | (inA << 3));
        inB = nextB;
        inA = nextA;
        last = p;
      }
    }
  }

  /** Follows unused edges from corner `start` until the ring closes; consumes them. */
  private traceRing(start: number): Int32Array {
    const rem = this.rem;
    const w = this.w;
    let c = start;
    let d = lowestBit(rem[c] & 15);
    const startDir = d;
    let n = this.push(0, c);
    for (;;) {
      rem[c] &= ~(1 << d);
      c += DI[d] + DJ[d] * w;
      const all = rem[c] >> 4;
      // Saddle (two opposite edges out): turn left -> 4-connected foreground.
      const nd = all === 5 || all === 10 ? (d + 1) & 3 : lowestBit(all);
      if (!(rem[c] & (1 << nd))) break; // edge already used: back at the start
      if (nd !== d) n = this.push(n, c);
      d = nd;
    }
    // Start corner is not a vertex when the ring enters it going the same way it left.
    return d === startDir ? this.buf.slice(2, n) : this.buf.slice(0, n);
  }

  private push(n: number, c: number): number {
    if (n + 2 > this.buf.length) {
      const b = new Int32Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[n] = c % this.w;
    this.buf[n + 1] = (c / this.w) | 0;
    return n + 2;
  }
}

/** Inclusive voxel bounding box [i0, i1, j0, j1] of the foreground of a slice, or null if empty. */
function sliceBox(data: Uint8Array, off: number, nx: number, ny: number): number[] | null {
  let i0 = nx, i1 = -1, j0 = ny, j1 = -1;
  for (let j = 0; j < ny; j++) {
    const row = off + j * nx;
    let first = -1, last = -1;
    for (let i = 0; i < nx; i++) {
      if (data[row + i]) {
        if (first < 0) first = i;
        last = i;
      }
    }
    if (first < 0) continue;
    if (first < i0) i0 = first;
    if (last > i1) i1 = last;
    if (j < j0) j0 = j;
    j1 = j;
  }
  return i1 < 0 ? null : [i0, i1, j0, j1];
}

/**
 * Douglas-Peucker on a closed ring of corners, distances in in-plane mm (sx, sy per corner step).
 * Returns the kept indices in ring order.
 */
function simplifyRing(ring: Int32Array, sx: number, sy: number, tolMm: number): number[] {
  const n = ring.length / 2;
  // Corner p in mm; index n is corner 0 again, which closes the ring.
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  for (let p = 0; p <= n; p++) {
    const q = p === n ? 0 : p;
    u[p] = ring[2 * q] * sx;
    v[p] = ring[2 * q + 1] * sy;
  }
  let far = 0, best = -1;
  for (let p = 1; p < n; p++) {
    const d = (u[p] - u[0]) ** 2 + (v[p] - v[0]) ** 2;
    if (d > best) (best = d), (far = p);
  }
  const keep = new Uint8Array(n + 1);
  keep[0] = keep[far] = keep[n] = 1;
  const stack = [0, far, far, n];
  const tol2 = tolMm * tolMm;
  while (stack.length) {
    const b = stack.pop()!, a = stack.pop()!;
    let m = -1, dmax = tol2;
    const ax = u[a], ay = v[a], bx = u[b], by = v[b];
    for (let p = a + 1; p < b; p++) {
      const d = segDist2(u[p], v[p], ax, ay, bx, by);
      if (d > dmax) (dmax = d), (m = p);
    }
    if (m >= 0) {
      keep[m] = 1;
      stack.push(a, m, m, b);
    }
  }
  const idx: number[] = [];
  for (let p = 0; p < n; p++) if (keep[p]) idx.push(p);
  // Never collapse a ring below a polygon.
  return idx.length >= 3 ? idx : Array.from({ length: n }, (_, p) => p);
}

function segDist2(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax, dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 > 0 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2)) : 0;
  return (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2;
}

/**
 * Contours of a mask, indexed by slice: result[k] = CLOSED_PLANAR contours on slice k, points in
 * patient mm at the slice plane. Islands and holes are separate contours (holes wind opposite).
 */
export function maskToContours(mask: Mask, opts: MaskToContoursOptions = {}): Contour[][] {
  const g = mask.grid;
  const [nx, ny, nz] = g.dims;
  const [sx, sy] = g.spacingMm;
  const tol = opts.toleranceMm ?? DEFAULT_TOLERANCE_FRACTION * Math.min(sx, sy);
  if (!(tol >= 0)) throw new RangeError(`toleranceMm must be >= 0, got ${tol}`);
  if (mask.data.length !== nx * ny * nz) throw new RangeError('mask data length does not match grid dims');
  const toPatient = affineOf((i, j, k) => voxelToPatient(g, i, j, k));
  const tracer = new SliceTracer(nx, ny);
  const result: Contour[][] = [];
  for (let k = 0; k < nz; k++) {
    const rings = tracer.traceBytes(mask.data, k * nx * ny);
    result.push(rings.map((ring) => ringToContour(ring, k, tol, sx, sy, toPatient)));
  }
  return result;
}

/**
 * A run-length mask (as src/segment/runs.ts makes): row r = j + k*ny holds the runs
 * rowFirst[r] .. rowFirst[r+1]-1, each covering i in [start, end), sorted and separated.
 */
export interface RowRuns {
  grid: Grid;
  rowFirst: Int32Array;
  start: Int32Array;
  end: Int32Array;
}

/** maskToContours for a run-length mask: the same contours, at a cost that follows the boundary. */
export function runsToContours(m: RowRuns, opts: MaskToContoursOptions = {}): Contour[][] {
  const g = m.grid;
  const [nx, ny, nz] = g.dims;
  const [sx, sy] = g.spacingMm;
  const tol = opts.toleranceMm ?? DEFAULT_TOLERANCE_FRACTION * Math.min(sx, sy);
  if (!(tol >= 0)) throw new RangeError(`toleranceMm must be >= 0, got ${tol}`);
  if (m.rowFirst.length !== ny * nz + 1) throw new RangeError('run mask rows do not match grid dims');
  const toPatient = affineOf((i, j, k) => voxelToPatient(g, i, j, k));
  const tracer = new SliceTracer(nx, ny);
  const result: Contour[][] = [];
  for (let k = 0; k < nz; k++) {
    const rings = tracer.traceRuns(m, k);
    result.push(rings.map((ring) => ringToContour(ring, k, tol, sx, sy, toPatient)));
  }
  return result;
}

function ringToContour(ring: Int32Array, k: number, tol: number, sx: number, sy: number, m: Affine): Contour {
  const idx = tol > 0 ? simplifyRing(ring, sx, sy, tol) : null;
  const count = idx ? idx.length : ring.length / 2;
  const points = new Float64Array(count * 3);
  for (let q = 0; q < count; q++) {
    const p = idx ? idx[q] : q;
    applyAffine(m, ring[2 * p] - 0.5, ring[2 * p + 1] - 0.5, k, points, 3 * q);
  }
  return { points };
}

// ---------------------------------------------------------------------------------------------
// contoursToMask

/** Polygons of one slice in continuous voxel (i, j) coordinates. */
type SlicePolys = Float64Array[];

/**
 * Rasterises contours onto `grid` with the even-odd rule at voxel centres, per slice. All contours of
 * a slice are filled together, so separate hole contours and DICOM keyhole polygons (in and out of a
 * hole along a zero-width channel) both leave the hole empty. The slice of a contour is its `k` if
 * given, else round(mean voxel k) of its points; contours on slices outside the grid are ignored and
 * in-plane parts outside the grid are clipped.
 */
export function contoursToMask(
  grid: Grid,
  contours: ReadonlyArray<SliceContour | Contour>,
  opts: ContoursToMaskOptions = {},
): Mask {
  const [nx, ny, nz] = grid.dims;
  const data = new Uint8Array(nx * ny * nz);
  const toVoxel = affineOf((x, y, z) => patientToVoxel(grid, [x, y, z]));
  const bySlice = new Map<number, SlicePolys>();
  contours.forEach((c, index) => {
    const poly = toVoxelPolygon(c, toVoxel);
    const reason: SkipReason | null = !poly ? 'degenerate' : poly.k < 0 || poly.k >= nz ? 'outside' : null;
    if (reason || !poly) return opts.onSkip?.(index, reason ?? 'degenerate');
    const list = bySlice.get(poly.k);
    if (list) list.push(poly.ij);
    else bySlice.set(poly.k, [poly.ij]);
  });
  const filler = new ScanlineFiller(nx, ny);
  for (const [k, polys] of bySlice) filler.fill(polys, data, k * nx * ny);
  return { grid, data };
}

/** Voxel-space (i, j) pairs and slice index of a contour, or null if it is not a usable polygon. */
function toVoxelPolygon(c: SliceContour | Contour, m: Affine): { k: number; ij: Float64Array } | null {
  const n = Math.floor(c.points.length / 3);
  if (n < 3) return null;
  const ij = new Float64Array(2 * n);
  const q = new Float64Array(3);
  let ksum = 0;
  for (let p = 0; p < n; p++) {
    applyAffine(m, c.points[3 * p], c.points[3 * p + 1], c.points[3 * p + 2], q, 0);
    if (!Number.isFinite(q[0] + q[1] + q[2])) return null;
    // Snap away float noise from the transform so vertices meant to be on a row/centre stay there.
    ij[2 * p] = snap(q[0]);
    ij[2 * p + 1] = snap(q[1]);
    ksum += q[2];
  }
  const k = 'k' in c && typeof c.k === 'number' ? Math.round(c.k) : Math.round(ksum / n);
  return Number.isFinite(k) ? { k, ij } : null;
}

const snap = (x: number): number => Math.round(x * 1e7) / 1e7;

/** Even-odd scanline fill: crossings bucketed per row (counting sort), sorted, filled in pairs. */
class ScanlineFiller {
  private readonly start: Int32Array;
  private xs = new Float64Array(4096);

  constructor(
    private readonly nx: number,
    private readonly ny: number,
  ) {
    this.start = new Int32Array(ny + 1);
  }

  fill(polys: SlicePolys, data: Uint8Array, off: number): void {
    const { nx, ny, start } = this;
    start.fill(0);
    this.forEachCrossingRow(polys, (j) => start[j + 1]++);
    for (let j = 0; j < ny; j++) start[j + 1] += start[j];
    if (start[ny] > this.xs.length) this.xs = new Float64Array(start[ny] * 2);
    const xs = this.xs;
    const cursor = start.slice(0, ny);
    this.forEachCrossingRow(polys, (j, x) => (xs[cursor[j]++] = x));
    for (let j = 0; j < ny; j++) {
      const row = xs.subarray(start[j], start[j + 1]).sort();
      const base = off + j * nx;
      for (let p = 0; p + 1 < row.length; p += 2) {
        // Centre i is inside when row[p] <= i < row[p+1].
        const a = Math.max(0, Math.ceil(row[p]));
        const b = Math.min(nx - 1, Math.ceil(row[p + 1]) - 1);
        if (a <= b) data.fill(1, base + a, base + b + 1);
      }
    }
  }

  /** Calls f(j, x) for every edge crossing of a row centre line j (half-open in y, so vertices count once). */
  private forEachCrossingRow(polys: SlicePolys, f: (j: number, x: number) => void): void {
    const ny = this.ny;
    for (const ij of polys) {
      const n = ij.length / 2;
      for (let p = 0, q = n - 1; p < n; q = p++) {
        const x0 = ij[2 * q], y0 = ij[2 * q + 1], x1 = ij[2 * p], y1 = ij[2 * p + 1];
        if (y0 === y1) continue;
        const jA = Math.max(0, Math.ceil(Math.min(y0, y1)));
        const jB = Math.min(ny - 1, Math.ceil(Math.max(y0, y1)) - 1);
        const slope = (x1 - x0) / (y1 - y0);
        for (let j = jA; j <= jB; j++) f(j, snap(x0 + (j - y0) * slope));
      }
    }
  }
}
