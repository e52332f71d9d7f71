/**
 * Synthetic ROI contours and dose fields with known geometry, for the DVH tests and benchmark. Pure.
 * Contours are axial (constant patient z) closed polygons in LPS mm, outer boundaries
 * counter-clockwise and holes clockwise (the DVH does not rely on the orientation).
 */
import type { Contour, Grid, Vec3 } from '../geometry/types.js';

/** A regular polygon approximating a circle, `points` vertices. */
export function circleContour(centre: [number, number], radiusMm: number, zMm: number, points = 64, clockwise = false): Contour {
  const p = new Float64Array(points * 3);
  for (let q = 0; q < points; q++) {
    const a = ((clockwise ? -1 : 1) * 2 * Math.PI * q) / points;
    p[3 * q] = centre[0] + radiusMm * Math.cos(a);
    p[3 * q + 1] = centre[1] + radiusMm * Math.sin(a);
    p[3 * q + 2] = zMm;
  }
  return { points: p };
}

export function rectangleContour([x0, y0, x1, y1]: [number, number, number, number], zMm: number, clockwise = false): Contour {
  const corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
  if (clockwise) corners.reverse();
  return { points: Float64Array.from(corners.flatMap(([x, y]) => [x, y, zMm])) };
}

/** Plane positions z0, z0 + step, ... up to z1 (inclusive, within rounding). */
export function planes(z0: number, z1: number, step: number): number[] {
  const out: number[] = [];
  for (let k = 0; z0 + k * step <= z1 + 1e-9; k++) out.push(Math.round((z0 + k * step) * 1e6) / 1e6);
  return out;
}

/** A sphere as one circle per plane (planes beyond the radius are left out). */
export function sphereContours(centre: Vec3, radiusMm: number, zs: number[], points = 64): Contour[] {
  return zs.flatMap((z) => {
    const dz = z - centre[2];
    if (Math.abs(dz) >= radiusMm) return [];
    return [circleContour([centre[0], centre[1]], Math.sqrt(radiusMm * radiusMm - dz * dz), z, points)];
  });
}

/** A circular cylinder along z: the same circle on every plane. */
export function cylinderContours(centre: [number, number], radiusMm: number, zs: number[], points = 64): Contour[] {
  return zs.map((z) => circleContour(centre, radiusMm, z, points));
}

/** A ring: outer circle and a hole, per plane. */
export function ringContours(centre: [number, number], outerMm: number, innerMm: number, zs: number[], points = 64): Contour[] {
  return zs.flatMap((z) => [circleContour(centre, outerMm, z, points), circleContour(centre, innerMm, z, points, true)]);
}

/** The same ring as one keyhole contour per plane: outer circle, a zero-width cut, inner circle backwards. */
export function keyholeRingContours(centre: [number, number], outerMm: number, innerMm: number, zs: number[], points = 64): Contour[] {
  return zs.map((z) => {
    const outer = circleContour(centre, outerMm, z, points).points;
    const inner = circleContour(centre, innerMm, z, points, true).points;
    // outer ring from angle 0 back to angle 0, then in along the cut, the hole clockwise, and out again.
    const p = new Float64Array((2 * points + 2) * 3);
    p.set(outer, 0);
    p.set(outer.subarray(0, 3), points * 3);
    p.set(inner, (points + 1) * 3);
    p.set(inner.subarray(0, 3), (2 * points + 1) * 3);
    return { points: p };
  });
}

export function boxContours(rect: [number, number, number, number], zs: number[]): Contour[] {
  return zs.map((z) => rectangleContour(rect, z));
}

/** An axis-aligned grid (identity direction) whose voxel centres start at `originMm`. */
export function axialGrid(originMm: Vec3, spacingMm: Vec3, dims: [number, number, number]): Grid {
  return { dims, spacingMm, originMm, direction: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] };
}

/** Samples f(x, y, z) (patient mm) at every voxel centre of an axis-aligned grid. */
export function sampleDose(grid: Grid, f: (x: number, y: number, z: number) => number, frameOffsetsMm?: ArrayLike<number>): Float32Array {
  const [nx, ny, nz] = grid.dims;
  const [r, c, k] = grid.direction;
  const out = new Float32Array(nx * ny * nz);
  for (let kk = 0; kk < nz; kk++) {
    const t = frameOffsetsMm ? frameOffsetsMm[kk] : kk * grid.spacingMm[2];
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const a = i * grid.spacingMm[0];
        const b = j * grid.spacingMm[1];
        const x = grid.originMm[0] + a * r[0] + b * c[0] + t * k[0];
        const y = grid.originMm[1] + a * r[1] + b * c[1] + t * k[1];
        const z = grid.originMm[2] + a * r[2] + b * c[2] + t * k[2];
        out[i + nx * (j + ny * kk)] = f(x, y, z);
      }
    }
  }
  return out;
}

/** peak x exp(-|p - centre|² / 2σ²). */
export function gaussian(centre: Vec3, peakGy: number, sigmaMm: number): (x: number, y: number, z: number) => number {
  const s2 = 2 * sigmaMm * sigmaMm;
  return (x, y, z) => peakGy * Math.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) / s2);
}
