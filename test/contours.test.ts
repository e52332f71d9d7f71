// Mask <-> CLOSED_PLANAR contour conversion: round trips, topology, keyhole, clipping, timing.
import { describe, expect, it } from 'vitest';
import { contoursToMask, maskToContours, type SliceContour } from '../src/geometry/contours.js';
import { dice, patientToVoxel, voxelToPatient, type Contour, type Grid, type Mask } from '../src/geometry/types.js';

// Feet-first supine-like orientation: row (-1,0,0), column (0,1,0), normal = row x column = (0,0,-1).
const grid: Grid = {
  dims: [120, 100, 6],
  spacingMm: [0.8, 1.3, 3],
  originMm: [101.5, -62.25, 30],
  direction: [
    [-1, 0, 0],
    [0, 1, 0],
    [0, 0, -1],
  ],
};

type Pred = (x: number, y: number, k: number) => boolean;

/** Mask from a predicate on in-plane mm offsets (x, y) from the slice centre. */
function maskOf(g: Grid, inside: Pred): Mask {
  const [nx, ny, nz] = g.dims;
  const data = new Uint8Array(nx * ny * nz);
  const cx = ((nx - 1) / 2) * g.spacingMm[0], cy = ((ny - 1) / 2) * g.spacingMm[1];
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++)
        if (inside(i * g.spacingMm[0] - cx, j * g.spacingMm[1] - cy, k)) data[i + j * nx + k * nx * ny] = 1;
  return { grid: g, data };
}

const ell = (x: number, y: number, cx: number, cy: number, a: number, b: number) =>
  ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1;

const shapes: Record<string, { pred: Pred; perSlice?: number[] }> = {
  ellipse: { pred: (x, y, k) => ell(x, y, 2, -3, 30 + k, 40 - k), perSlice: [1, 0] },
  ring: { pred: (x, y) => Math.hypot(x, y) <= 40 && Math.hypot(x, y) >= 18, perSlice: [1, 1] },
  'two islands': { pred: (x, y) => ell(x, y, -22, 0, 15, 25) || ell(x, y, 24, 5, 12, 20), perSlice: [2, 0] },
  'C-shape': {
    pred: (x, y) => Math.hypot(x, y) <= 38 && Math.hypot(x, y) >= 20 && Math.abs(Math.atan2(y, x)) > 0.6,
    perSlice: [1, 0],
  },
  lungs: {
    pred: (x, y, k) =>
      ell(x, y, 0, 0, 44 - k, 58 - k) && !ell(x, y, -20, 0, 13, 28 - 2 * k) && !ell(x, y, 20, 2, 12, 26 - 2 * k),
    perSlice: [1, 2],
  },
  'full slice (touches grid border)': { pred: () => true, perSlice: [1, 0] },
};

/** Signed area in voxel (i, j) space: > 0 counter-clockwise. */
function voxelArea(g: Grid, c: Contour): number {
  const n = c.points.length / 3;
  let a = 0;
  for (let p = 0, q = n - 1; p < n; q = p++) {
    const [xi, yi] = patientToVoxel(g, [c.points[3 * q], c.points[3 * q + 1], c.points[3 * q + 2]]);
    const [xj, yj] = patientToVoxel(g, [c.points[3 * p], c.points[3 * p + 1], c.points[3 * p + 2]]);
    a += xi * yj - xj * yi;
  }
  return a / 2;
}

describe('maskToContours / contoursToMask round trip', () => {
  for (const [name, { pred, perSlice }] of Object.entries(shapes)) {
    it(`${name}: Dice >= 0.99 at default tolerance, exact at tolerance 0`, () => {
      const mask = maskOf(grid, pred);
      const exact = maskToContours(mask, { toleranceMm: 0 });
      const simple = maskToContours(mask);
      expect(exact).toHaveLength(grid.dims[2]);
      expect(dice(contoursToMask(grid, exact.flat()).data, mask.data)).toBe(1);
      const d = dice(contoursToMask(grid, simple.flat()).data, mask.data);
      expect(d).toBeGreaterThanOrEqual(0.99);

      simple.forEach((slice, k) => {
        if (perSlice) {
          expect(slice.filter((c) => voxelArea(grid, c) > 0)).toHaveLength(perSlice[0]);
          expect(slice.filter((c) => voxelArea(grid, c) < 0)).toHaveLength(perSlice[1]);
        }
        for (const c of slice) {
          for (let p = 0; p < c.points.length; p += 3) {
            const v = patientToVoxel(grid, [c.points[p], c.points[p + 1], c.points[p + 2]]);
            expect(v[2]).toBeCloseTo(k, 9); // on the slice plane
          }
        }
      });
      const nExact = exact.flat().reduce((s, c) => s + c.points.length / 3, 0);
      const nSimple = simple.flat().reduce((s, c) => s + c.points.length / 3, 0);
      expect(nSimple).toBeLessThanOrEqual(nExact);
    });
  }

  it('saddle: diagonal voxels are separate 4-connected contours and round-trip exactly', () => {
    const g: Grid = { ...grid, dims: [4, 4, 1] };
    const data = new Uint8Array(16);
    data[1 + 1 * 4] = data[2 + 2 * 4] = 1; // diagonal pair
    const cs = maskToContours({ grid: g, data });
    expect(cs[0]).toHaveLength(2);
    expect(cs[0].every((c) => c.points.length === 12)).toBe(true);
    expect(Array.from(contoursToMask(g, cs[0]).data)).toEqual(Array.from(data));
    // Vertices are the voxel corners, half a voxel from the centre, in patient mm.
    const corners = [[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]].map(([di, dj]) =>
      voxelToPatient(g, 1 + di, 1 + dj, 0),
    );
    const pts = Array.from({ length: 4 }, (_, p) => Array.from(cs[0][0].points.subarray(3 * p, 3 * p + 3)));
    for (const c of corners) expect(pts.some((p) => p.every((v, a) => Math.abs(v - c[a]) < 1e-9))).toBe(true);
    expect(voxelArea(g, cs[0][0])).toBeCloseTo(1, 9); // one voxel, counter-clockwise

    const hole = new Uint8Array(16).fill(1); // background diagonal pair inside foreground
    hole[1 + 1 * 4] = hole[2 + 2 * 4] = 0;
    const hs = maskToContours({ grid: g, data: hole }, { toleranceMm: 0 });
    expect(hs[0]).toHaveLength(2); // outer + one 8-connected background hole
    expect(Array.from(contoursToMask(g, hs[0]).data)).toEqual(Array.from(hole));
  });

  it('random speckle (many saddles) round-trips exactly at tolerance 0', () => {
    const g: Grid = { ...grid, dims: [64, 48, 3] };
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const data = Uint8Array.from({ length: 64 * 48 * 3 }, () => (rnd() < 0.5 ? 1 : 0));
    const back = contoursToMask(g, maskToContours({ grid: g, data }, { toleranceMm: 0 }).flat());
    expect(dice(back.data, data)).toBe(1);
    const simple = contoursToMask(g, maskToContours({ grid: g, data }).flat());
    expect(dice(simple.data, data)).toBeGreaterThanOrEqual(0.99);
  });

  it('empty mask gives no contours', () => {
    const cs = maskToContours({ grid, data: new Uint8Array(120 * 100 * 6) });
    expect(cs.every((s) => s.length === 0)).toBe(true);
    expect(contoursToMask(grid, []).data.every((v) => v === 0)).toBe(true);
  });
});

/** Polygon given in voxel (i, j) coordinates on slice k -> patient mm contour. */
function polyToPatient(g: Grid, k: number, ij: number[][]): Float64Array {
  return Float64Array.from(ij.flatMap(([i, j]) => voxelToPatient(g, i, j, k)));
}

/** Reference even-odd point-in-polygon (brute force) at every voxel centre of slice k. */
function bruteForce(g: Grid, k: number, polys: number[][][]): Uint8Array {
  const [nx, ny, nz] = g.dims;
  const out = new Uint8Array(nx * ny * nz);
  for (let j = 0; j < ny; j++)
    for (let i = 0; i < nx; i++) {
      let inside = false;
      for (const poly of polys)
        for (let p = 0, q = poly.length - 1; p < poly.length; q = p++) {
          const [xq, yq] = poly[q], [xp, yp] = poly[p];
          if (yq <= j !== yp <= j && i < xq + ((j - yq) * (xp - xq)) / (yp - yq)) inside = !inside;
        }
      if (inside) out[i + j * nx + k * nx * ny] = 1;
    }
  return out;
}

describe('contoursToMask', () => {
  it('keyhole polygon (hole joined by a zero-width channel) leaves the hole empty', () => {
    const k = 2;
    // Outer square CCW; at the top edge the channel x = 30 (on a column of centres) drops to the hole,
    // which is walked clockwise, then back up the channel.
    const keyhole = [
      [10.3, 10.3], [50.3, 10.3], [50.3, 50.3], [30, 50.3], [30, 35.3],
      [35.3, 35.3], [35.3, 25.3], [25.3, 25.3], [25.3, 35.3], [30, 35.3],
      [30, 50.3], [10.3, 50.3],
    ];
    const got = contoursToMask(grid, [{ points: polyToPatient(grid, k, keyhole) }]).data;
    const [nx, ny] = grid.dims;
    const expected = new Uint8Array(got.length);
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++) {
        const inOuter = i > 10.3 && i < 50.3 && j > 10.3 && j < 50.3;
        const inHole = i > 25.3 && i < 35.3 && j > 25.3 && j < 35.3;
        if (inOuter && !inHole) expected[i + j * nx + k * nx * ny] = 1;
      }
    expect(dice(got, expected)).toBe(1);
    expect(got[30 + 40 * nx + k * nx * ny]).toBe(1); // channel column inside the solid ring stays filled
    expect(got[30 + 30 * nx + k * nx * ny]).toBe(0); // hole centre

    // Same result as outer + separate hole contour, with explicit slice indices.
    const outer = [[10.3, 10.3], [50.3, 10.3], [50.3, 50.3], [10.3, 50.3]];
    const hole = [[25.3, 25.3], [35.3, 25.3], [35.3, 35.3], [25.3, 35.3]];
    const sep: SliceContour[] = [outer, hole].map((p) => ({ k, points: polyToPatient(grid, k, p) }));
    expect(dice(contoursToMask(grid, sep).data, expected)).toBe(1);
  });

  it('clips contours partly outside the grid and skips ones off the slice range', () => {
    const k = 4;
    const circle = Array.from({ length: 64 }, (_, t) => {
      const a = (2 * Math.PI * t) / 64;
      return [3 + 25 * Math.cos(a), 90 + 30 * Math.sin(a)]; // spills past i < 0 and j >= ny
    });
    const skipped: [number, string][] = [];
    const got = contoursToMask(
      grid,
      [
        { points: polyToPatient(grid, k, circle) },
        { points: polyToPatient(grid, -3, circle) }, // slice outside the grid
        { points: new Float64Array([1, 2, 3, 4, 5, 6]) }, // < 3 points
        { k: grid.dims[2] + 1, points: polyToPatient(grid, k, circle) },
      ],
      { onSkip: (i, why) => skipped.push([i, why]) },
    ).data;
    expect(skipped).toEqual([[1, 'outside'], [2, 'degenerate'], [3, 'outside']]);
    const expected = bruteForce(grid, k, [circle]);
    expect(expected.some((v) => v)).toBe(true);
    expect(Array.from(got)).toEqual(Array.from(expected));
  });

  it('matches a brute-force even-odd reference for overlapping star polygons', () => {
    const k = 1;
    const star = (cx: number, cy: number, r: number, phase: number) =>
      Array.from({ length: 11 }, (_, t) => {
        const a = phase + (t * 4 * Math.PI) / 11; // self-intersecting {11/2} star
        return [cx + r * Math.cos(a), cy + 0.8 * r * Math.sin(a)];
      });
    const polys = [star(50, 45, 35, 0.1), star(70, 55, 25, 0.7)];
    const got = contoursToMask(grid, polys.map((p) => ({ points: polyToPatient(grid, k, p) }))).data;
    expect(Array.from(got)).toEqual(Array.from(bruteForce(grid, k, polys)));
  });
});

describe('performance (printed, not asserted)', () => {
  it('512x512x100 body-like mask', () => {
    const g: Grid = { ...grid, dims: [512, 512, 100], spacingMm: [0.977, 0.977, 2.5] };
    const mask = maskOf(g, (x, y, k) => {
      const s = 1 + 0.15 * Math.sin(k / 15);
      return (
        ell(x, y, 0, 10, 190 * s, 120 * s) &&
        !ell(x, y, -70, 0, 45 * s, 70 * s) &&
        !ell(x, y, 70, 5, 42 * s, 68 * s) &&
        !ell(x, y, 0, -60, 12, 12)
      );
    });
    let t = performance.now();
    const cs = maskToContours(mask);
    const tContours = performance.now() - t;
    const flat = cs.flat();
    t = performance.now();
    const back = contoursToMask(g, flat);
    const tMask = performance.now() - t;
    const pts = flat.reduce((s, c) => s + c.points.length / 3, 0);
    const d = dice(back.data, mask.data);
    console.log(
      `contours perf 512x512x100: maskToContours ${tContours.toFixed(0)} ms (${flat.length} contours, ${pts} points), ` +
        `contoursToMask ${tMask.toFixed(0)} ms, Dice ${d.toFixed(5)}`,
    );
    expect(d).toBeGreaterThan(0.99);
  });
});
