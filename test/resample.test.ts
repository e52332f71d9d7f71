import { describe, expect, it } from 'vitest';
import { resampleMaskToGrid, resampleNearest } from '../src/geometry/resample.js';
import { dice, patientToVoxel, voxelCount, voxelToPatient, type Grid, type Mask, type Vec3 } from '../src/geometry/types.js';

/** Voxels of `grid` whose centre satisfies `inside`. */
function rasterise(grid: Grid, inside: (p: Vec3) => boolean): Mask {
  const [nx, ny, nz] = grid.dims;
  const data = new Uint8Array(voxelCount(grid));
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) data[i + nx * (j + ny * k)] = inside(voxelToPatient(grid, i, j, k)) ? 1 : 0;
  return { grid, data };
}

/** The definition, voxel by voxel: the source voxel containing each target centre. */
function reference(source: Mask, target: Grid): Uint8Array {
  const [sx, sy, sz] = source.grid.dims;
  const out = new Uint8Array(voxelCount(target));
  const [nx, ny, nz] = target.dims;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const [a, b, c] = patientToVoxel(source.grid, voxelToPatient(target, i, j, k)).map((x) => Math.floor(x + 0.5));
        if (a >= 0 && b >= 0 && c >= 0 && a < sx && b < sy && c < sz) out[i + nx * (j + ny * k)] = source.data[a + sx * (b + sy * c)];
      }
    }
  }
  return out;
}

const I: [Vec3, Vec3, Vec3] = [
  [1, 0, 0],
  [0, 1, 0],
  [0, 0, 1],
];

/** Target: 1 x 1.5 x 2.5 mm voxels; source voxels are twice as large and their faces fall halfway
 *  between target centres, so "the voxel containing the centre" is never a tie. */
const target: Grid = { dims: [24, 20, 12], spacingMm: [1, 1.5, 2.5], originMm: [0.5, 0.75, 1.25], direction: I };

/** Patient extent covered by the source grids below: x [0, 24], y [0, 30], z [0, 30] mm. */
const sourceGrids: Record<string, Grid> = {
  'same orientation, double spacing': { dims: [12, 10, 6], spacingMm: [2, 3, 5], originMm: [1, 1.5, 2.5], direction: I },
  'i flipped (row direction -x)': {
    dims: [12, 10, 6],
    spacingMm: [2, 3, 5],
    originMm: [23, 1.5, 2.5],
    direction: [[-1, 0, 0], [0, 1, 0], [0, 0, 1]],
  },
  'j and k flipped (as dcm2niix writes rows bottom-up)': {
    dims: [12, 10, 6],
    spacingMm: [2, 3, 5],
    originMm: [1, 28.5, 27.5],
    direction: [[1, 0, 0], [0, -1, 0], [0, 0, -1]],
  },
  'axes permuted (i along z, j along x, k along y) and a flip': {
    dims: [6, 12, 10],
    spacingMm: [5, 2, 3],
    originMm: [1, 28.5, 2.5],
    direction: [[0, 0, 1], [1, 0, 0], [0, -1, 0]],
  },
};

/** A box whose faces lie on source voxel faces, and a partial one at the grid's edge. */
const box = (p: Vec3) => p[0] > 4 && p[0] < 16 && p[1] > 6 && p[1] < 21 && p[2] > 5 && p[2] < 25;

describe('resampleMaskToGrid', () => {
  for (const [name, grid] of Object.entries(sourceGrids)) {
    it(`puts a box where it belongs: ${name}`, () => {
      const source = rasterise(grid, box);
      expect(source.data.reduce((s, v) => s + v, 0)).toBeGreaterThan(0);
      const result = resampleMaskToGrid(source, target);
      expect(result.grid).toBe(target);
      const expected = rasterise(target, box);
      expect(Array.from(result.data)).toEqual(Array.from(expected.data));
    });
  }

  it('leaves target voxels outside the source empty', () => {
    // The source covers x [0, 12] only; its every voxel is set.
    const half: Grid = { dims: [6, 10, 6], spacingMm: [2, 3, 5], originMm: [1, 1.5, 2.5], direction: I };
    const result = resampleMaskToGrid({ grid: half, data: new Uint8Array(voxelCount(half)).fill(1) }, target);
    expect(Array.from(result.data)).toEqual(Array.from(rasterise(target, (p) => p[0] < 12 && p[1] < 30 && p[2] < 30).data));
  });

  it('is the identity on the same grid', () => {
    const sphere = rasterise(target, (p) => (p[0] - 12) ** 2 + (p[1] - 15) ** 2 + (p[2] - 15) ** 2 < 64);
    expect(Array.from(resampleMaskToGrid(sphere, target).data)).toEqual(Array.from(sphere.data));
  });

  it('follows an oblique source grid (rotated 30 degrees about z)', () => {
    const c = Math.cos(Math.PI / 6);
    const s = Math.sin(Math.PI / 6);
    const oblique: Grid = { dims: [60, 60, 40], spacingMm: [0.6, 0.6, 0.8], originMm: [-2, -16, 0], direction: [[c, s, 0], [-s, c, 0], [0, 0, 1]] };
    const sphere = (p: Vec3) => (p[0] - 12) ** 2 + (p[1] - 15) ** 2 + (p[2] - 15) ** 2 < 81;
    const source = rasterise(oblique, sphere);
    const result = resampleMaskToGrid(source, target);
    expect(Array.from(result.data)).toEqual(Array.from(reference(source, target)));
    expect(dice(result.data, rasterise(target, sphere).data)).toBeGreaterThan(0.9);
  });

  it('agrees with the voxel-by-voxel definition on the axis-aligned grids too', () => {
    for (const grid of Object.values(sourceGrids)) {
      const source = rasterise(grid, (p) => (p[0] - 10) ** 2 + (p[1] - 12) ** 2 + (p[2] - 14) ** 2 < 70);
      expect(Array.from(resampleMaskToGrid(source, target).data)).toEqual(Array.from(reference(source, target)));
    }
  });
});

describe('resampleNearest', () => {
  it('keeps label values and the array type', () => {
    const grid = sourceGrids['axes permuted (i along z, j along x, k along y) and a flip'];
    const labels = new Int16Array(voxelCount(grid));
    const [nx, ny, nz] = grid.dims;
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const p = voxelToPatient(grid, i, j, k);
          labels[i + nx * (j + ny * k)] = p[0] < 12 ? 1 : p[1] < 15 ? 2 : 300;
        }
      }
    }
    const out = resampleNearest({ grid, data: labels }, target);
    expect(out).toBeInstanceOf(Int16Array);
    const expected = new Int16Array(voxelCount(target));
    const [tx, ty, tz] = target.dims;
    for (let k = 0; k < tz; k++) {
      for (let j = 0; j < ty; j++) {
        for (let i = 0; i < tx; i++) {
          const p = voxelToPatient(target, i, j, k);
          expected[i + tx * (j + ty * k)] = p[0] < 12 ? 1 : p[1] < 15 ? 2 : 300;
        }
      }
    }
    expect(new Set(out)).toEqual(new Set([1, 2, 300]));
    expect(Array.from(out)).toEqual(Array.from(expected));
  });

  it('refuses data that does not fit its grid', () => {
    expect(() => resampleNearest({ grid: target, data: new Uint8Array(10) }, target)).toThrow(/source has 10 voxels/);
  });
});
