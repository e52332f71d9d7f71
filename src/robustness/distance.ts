/**
 * Exact Euclidean distance transforms in mm on anisotropic voxel grids (Felzenszwalb & Huttenlocher,
 * "Distance Transforms of Sampled Functions", 2012): the squared distance is separable, so one
 * 1-D lower-envelope-of-parabolas pass per axis gives the exact 3-D result in O(voxels).
 *
 * Distances are between voxel centres. Pure: arrays in, arrays out. Indexing i + nx*(j + ny*k).
 */
import type { Mm, Vec3 } from '../geometry/types.js';

type Dims = [number, number, number];

/**
 * Squared distance (mm²) from every voxel to the nearest voxel with `targets[v] === targetValue`
 * (Infinity when there is none). A target voxel has distance 0.
 */
export function squaredDistanceMm2(targets: Uint8Array, dims: Dims, spacingMm: Vec3, targetValue: 0 | 1 = 1): Float64Array {
  const [nx, ny, nz] = dims;
  if (targets.length !== nx * ny * nz) {
    throw new Error(`distance transform: ${targets.length} voxels given for dims ${dims.join('x')}; pass a mask of exactly nx*ny*nz voxels`);
  }
  const f = new Float64Array(targets.length);
  for (let v = 0; v < f.length; v++) f[v] = (targets[v] !== 0) === (targetValue === 1) ? 0 : Infinity;
  const longest = Math.max(nx, ny, nz);
  const work = new Envelope(longest);
  // Axis passes: stride and count of lines along each axis.
  passAlong(f, nx, 1, ny * nz, (line) => rowStart(line, nx), spacingMm[0], work);
  passAlong(f, ny, nx, nx * nz, (line) => Math.floor(line / nx) * nx * ny + (line % nx), spacingMm[1], work);
  passAlong(f, nz, nx * ny, nx * ny, (line) => line, spacingMm[2], work);
  return f;
}

function rowStart(line: number, nx: number): number {
  return line * nx;
}

/**
 * Signed distance in mm: for a voxel outside the mask, its distance to the nearest mask voxel
 * (positive); for a voxel inside, minus its distance to the nearest non-mask voxel. Sorting by it
 * orders voxels from the deepest inside to the farthest outside, which is what volume adaptation
 * needs. Voxels of a mask that fills the whole array get -Infinity (no outside voxel exists).
 */
export function signedDistanceMm(mask: Uint8Array, dims: Dims, spacingMm: Vec3): Float64Array {
  const toInside = squaredDistanceMm2(mask, dims, spacingMm, 1);
  const toOutside = squaredDistanceMm2(mask, dims, spacingMm, 0);
  const out = toInside; // reuse: every voxel is written once below
  for (let v = 0; v < out.length; v++) {
    out[v] = mask[v] !== 0 ? -Math.sqrt(toOutside[v]) : Math.sqrt(toInside[v]);
  }
  return out;
}

/** Scratch buffers of the 1-D transform, sized once for the longest axis. */
class Envelope {
  readonly line: Float64Array;
  readonly result: Float64Array;
  readonly vertex: Int32Array;
  readonly bound: Float64Array;
  constructor(n: number) {
    this.line = new Float64Array(n);
    this.result = new Float64Array(n);
    this.vertex = new Int32Array(n);
    this.bound = new Float64Array(n + 1);
  }
}

/** Runs the 1-D transform on every line along one axis, in place. */
function passAlong(
  f: Float64Array,
  n: number,
  stride: number,
  lines: number,
  start: (line: number) => number,
  spacing: Mm,
  work: Envelope,
): void {
  const w2 = spacing * spacing;
  for (let line = 0; line < lines; line++) {
    const s = start(line);
    let any = false;
    for (let q = 0, p = s; q < n; q++, p += stride) {
      const x = f[p];
      work.line[q] = x;
      if (x !== Infinity) any = true;
    }
    if (!any) continue; // nothing reachable on this line yet: it stays Infinity
    transform1d(work, n, w2);
    for (let q = 0, p = s; q < n; q++, p += stride) f[p] = work.result[q];
  }
}

/**
 * 1-D squared distance transform: result[q] = min_p (w2 (q-p)² + line[p]), over the finite
 * samples only (Infinity samples add no parabola). Felzenszwalb–Huttenlocher lower envelope.
 */
function transform1d(work: Envelope, n: number, w2: number): void {
  const { line: g, result, vertex: v, bound: z } = work;
  let k = -1;
  for (let q = 0; q < n; q++) {
    const gq = g[q];
    if (gq === Infinity) continue;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -Infinity;
      z[1] = Infinity;
      continue;
    }
    const fq = gq + w2 * q * q;
    let s = intersect(fq, q, g, v[k], w2);
    while (s <= z[k]) {
      k--;
      s = intersect(fq, q, g, v[k], w2);
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  let j = 0;
  for (let q = 0; q < n; q++) {
    while (z[j + 1] < q) j++;
    const d = q - v[j];
    result[q] = w2 * d * d + g[v[j]];
  }
}

/** Abscissa where the parabola rooted at q (value fq including w2 q²) meets the one at p. */
function intersect(fq: number, q: number, g: Float64Array, p: number, w2: number): number {
  return (fq - (g[p] + w2 * p * p)) / (2 * w2 * (q - p));
}
