// The synthetic thorax phantom's ground truth as masks on a CT grid (HFS), for segmentation tests.
import type { Grid, Volume } from '../../src/geometry/types.js';
import { distanceToSegmentSq, gridOriginMm, thoraxAirways, thoraxAnatomy, thoraxCouch, thoraxSlices, type Ellipsoid, type PhantomSpec } from '../../src/phantom/thorax.js';

/** Voxels of the HFS grid whose centre satisfies `inside(x, y, z)`, testing only columns in the x-range
 *  `span(y, z)` returns for each row (null: none), so big volumes stay fast. */
export function truthMask(
  grid: Grid,
  inside: (x: number, y: number, z: number) => boolean,
  span: (y: number, z: number) => [number, number] | null = () => [-Infinity, Infinity],
): Uint8Array {
  const [nx, ny, nz] = grid.dims;
  const [ox, oy, oz] = grid.originMm;
  const [sx, sy, sz] = grid.spacingMm;
  const out = new Uint8Array(nx * ny * nz);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      const s = span(oy + j * sy, oz + k * sz);
      if (!s) continue;
      const first = Math.max(0, Math.floor((s[0] - ox) / sx));
      const last = Math.min(nx - 1, Math.ceil((s[1] - ox) / sx));
      for (let i = first; i <= last; i++) if (inside(ox + i * sx, oy + j * sy, oz + k * sz)) out[(k * ny + j) * nx + i] = 1;
    }
  }
  return out;
}

const inEllipsoid = (e: Ellipsoid) => (x: number, y: number, z: number) =>
  ((x - e.centreMm[0]) / e.radiiMm[0]) ** 2 + ((y - e.centreMm[1]) / e.radiiMm[1]) ** 2 + ((z - e.centreMm[2]) / e.radiiMm[2]) ** 2 <= 1;

/** x-range of the ellipsoid's section at (y, z), slightly widened; the exact test is inEllipsoid. */
const ellipsoidSpan = (e: Ellipsoid) => (y: number, z: number): [number, number] | null => {
  const rest = 1 - ((y - e.centreMm[1]) / e.radiiMm[1]) ** 2 - ((z - e.centreMm[2]) / e.radiiMm[2]) ** 2;
  if (rest < 0) return null;
  const half = e.radiiMm[0] * Math.sqrt(rest) + 1;
  return [e.centreMm[0] - half, e.centreMm[0] + half];
};

function ellipsoidTruth(grid: Grid, e: Ellipsoid): Uint8Array {
  return truthMask(grid, inEllipsoid(e), ellipsoidSpan(e));
}

/** a and none of the others. */
function andNot(a: Uint8Array, ...others: Uint8Array[]): Uint8Array {
  const out = a.slice();
  for (const o of others) for (let v = 0; v < out.length; v++) out[v] &= 1 - o[v];
  return out;
}

function or(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = a.slice();
  for (let v = 0; v < out.length; v++) out[v] |= b[v];
  return out;
}

export interface Truth {
  body: Uint8Array;
  lungL: Uint8Array;
  lungR: Uint8Array;
  bones: Uint8Array;
  couch: Uint8Array;
  trachea: Uint8Array;
  /** The main bronchi between the carina and the lung surfaces. */
  bronchi: Uint8Array;
}

export function phantomTruth(spec: PhantomSpec, grid: Grid): Truth {
  const e = Object.fromEntries(thoraxAnatomy(spec).map((s) => [s.name, ellipsoidTruth(grid, s)]));
  // Heart and spine are painted after the lungs, so they cut into them.
  const lungL = andNot(e.lung_left, e.heart, e.spine);
  const lungR = andNot(e.lung_right, e.heart, e.spine);
  const tube = (name: string) => {
    const t = thoraxAirways(spec).find((a) => a.name === name)!;
    const box = [0, 1, 2].map((a) => [Math.min(t.fromMm[a], t.toMm[a]) - t.radiusMm, Math.max(t.fromMm[a], t.toMm[a]) + t.radiusMm]);
    const span = (y: number, z: number): [number, number] | null =>
      y < box[1][0] || y > box[1][1] || z < box[2][0] || z > box[2][1] ? null : [box[0][0], box[0][1]];
    return truthMask(grid, (x, y, z) => distanceToSegmentSq([x, y, z], t.fromMm, t.toMm) <= t.radiusMm ** 2, span);
  };
  const trachea = andNot(tube('trachea'), lungL, lungR);
  const slabs = thoraxCouch(spec);
  return {
    body: e.body,
    lungL,
    lungR,
    bones: e.spine,
    couch: truthMask(
      grid,
      (x, y) => slabs.some((s) => x >= s.xMm[0] && x <= s.xMm[1] && y >= s.yMm[0] && y <= s.yMm[1]),
      (y) => (slabs.some((s) => y >= s.yMm[0] && y <= s.yMm[1]) ? [-Infinity, Infinity] : null),
    ),
    trachea,
    bronchi: andNot(or(tube('bronchus_left'), tube('bronchus_right')), lungL, lungR, trachea),
  };
}


/** The phantom's CT as one volume on its HFS grid (no DICOM in between). */
export function phantomVolume(spec: PhantomSpec): Volume<Int16Array> {
  const [x0, y0] = gridOriginMm(spec);
  const plane = spec.rows * spec.columns;
  const data = new Int16Array(plane * spec.slices);
  let z0 = 0;
  for (const slice of thoraxSlices(spec)) {
    if (slice.index === 0) z0 = slice.zMm;
    data.set(slice.hu, slice.index * plane);
  }
  const grid: Grid = {
    dims: [spec.columns, spec.rows, spec.slices],
    spacingMm: [spec.pixelSpacingMm[1], spec.pixelSpacingMm[0], spec.sliceThicknessMm],
    originMm: [x0, y0, z0],
    direction: [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ],
  };
  return { grid, data };
}
