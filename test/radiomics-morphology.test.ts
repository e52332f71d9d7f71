// IBSI morphology (family HCUG) against the IBSI 1 reference values, plus geometric checks of the
// mesh, convex hull and Moran/Geary machinery on shapes whose answers are known in closed form.
import { describe, expect, it } from 'vitest';
import { prepareRoi } from '../src/radiomics/extract.js';
import { convexHull, ellipsoidArea, hullMeasures, marchingCubesMesh, maskBox, morphologyFeatures, principalAxes, spatialAutocorrelation } from '../src/radiomics/morphology.js';
import type { RawVolume } from '../src/radiomics/preprocess.js';
import { CT_CONFIGS, type CtConfigName } from '../src/radiomics/settings.js';
import type { RoiVolume, Vec3 } from '../src/radiomics/types.js';
import { loadCtPhantom, loadDigitalPhantom, loadReferenceValues, score } from './helpers/ibsi.js';

const FAMILY = 'Morphological features';
const reference = loadReferenceValues().filter((r) => r.family === FAMILY);

/** A RoiVolume from a predicate on voxel indices; intensities from `value`. */
function shape(dims: Vec3, spacing: Vec3, inside: (i: number, j: number, k: number) => boolean, value: (i: number, j: number, k: number) => number = () => 1): RoiVolume {
  const n = dims[0] * dims[1] * dims[2];
  const mask = new Uint8Array(n);
  const intensity = new Float64Array(n);
  for (let k = 0, p = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, p++) {
        mask[p] = inside(i, j, k) ? 1 : 0;
        intensity[p] = value(i, j, k);
      }
  return { dims, spacingMm: spacing, intensity, morphMask: mask, intensityMask: mask.slice() };
}

function meshOf(v: RoiVolume) {
  return marchingCubesMesh(v.morphMask, v.dims, maskBox(v.morphMask, v.dims)!, v.spacingMm);
}

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('marching-cubes mesh', () => {
  it('meshes one voxel as an octahedron scaled by the spacing', () => {
    const v = shape([1, 1, 1], [2, 3, 4], () => true);
    const m = meshOf(v);
    expect(m.triangles).toBe(8);
    // Octahedron with half-diagonals 1, 1.5, 2 mm: volume 4/3 * 1 * 1.5 * 2.
    expect(m.volumeMm3).toBeCloseTo((4 / 3) * 1 * 1.5 * 2, 10);
    expect(m.extentMm).toEqual([2, 3, 4]);
  });

  it('gives a closed surface: mesh volume approaches the voxel volume for a ball', () => {
    const r = 10;
    const v = shape([25, 25, 25], [1, 1, 1], (i, j, k) => (i - 12) ** 2 + (j - 12) ** 2 + (k - 12) ** 2 <= r * r);
    const m = meshOf(v);
    const voxels = maskBox(v.morphMask, v.dims)!.count;
    // Marching cubes cuts the voxel corners off: slightly less than the voxel volume, within ~2 %.
    expect(m.volumeMm3).toBeLessThan(voxels);
    expect(m.volumeMm3).toBeGreaterThan(0.97 * voxels);
    expect(m.areaMm2).toBeGreaterThan(4 * Math.PI * r * r * 0.95);
    expect(m.areaMm2).toBeLessThan(4 * Math.PI * r * r * 1.1);
  });

  it('treats diagonal-only contact (ambiguous faces) consistently, giving additive volumes', () => {
    // Two voxels touching along an edge: the mesh separates them, so the volume is twice one octahedron.
    const v = shape([2, 2, 1], [1, 1, 1], (i, j) => i === j);
    const one = meshOf(shape([1, 1, 1], [1, 1, 1], () => true));
    expect(meshOf(v).volumeMm3).toBeCloseTo(2 * one.volumeMm3, 10);
  });
});

describe('convex hull', () => {
  it('equals the mesh for a convex block and exceeds it for an L shape', () => {
    const block = shape([6, 5, 4], [1, 1, 2], () => true);
    const mb = meshOf(block);
    const hb = hullMeasures(convexHull(mb.hullCandidates), mb.hullCandidates, block.spacingMm);
    expect(hb.volumeMm3).toBeCloseTo(mb.volumeMm3, 9);
    expect(hb.areaMm2).toBeCloseTo(mb.areaMm2, 9);
    const ell = shape([6, 6, 3], [1, 1, 1], (i, j) => i < 2 || j < 2);
    const ml = meshOf(ell);
    const hl = hullMeasures(convexHull(ml.hullCandidates), ml.hullCandidates, ell.spacingMm);
    expect(hl.volumeMm3).toBeGreaterThan(ml.volumeMm3 * 1.2);
  });

  it('contains every candidate point and has the largest pairwise distance as diameter', () => {
    const rand = rng(7);
    const v = shape([12, 10, 8], [0.8, 1.1, 2.5], () => rand() < 0.3);
    const m = meshOf(v);
    const hull = convexHull(m.hullCandidates);
    const P = m.hullCandidates;
    let outside = 0;
    for (let t = 0; t < hull.length; t += 3) {
      const [a, b, c] = [hull[t], hull[t + 1], hull[t + 2]];
      const u = [0, 1, 2].map((d) => P[3 * b + d] - P[3 * a + d]);
      const w = [0, 1, 2].map((d) => P[3 * c + d] - P[3 * a + d]);
      const n = [u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]];
      for (let p = 0; p < P.length / 3; p++) {
        const s = n[0] * (P[3 * p] - P[3 * a]) + n[1] * (P[3 * p + 1] - P[3 * a + 1]) + n[2] * (P[3 * p + 2] - P[3 * a + 2]);
        if (s > 0) outside++;
      }
    }
    expect(outside).toBe(0);
    let d2 = 0;
    const sp = v.spacingMm;
    for (let p = 0; p < P.length / 3; p++)
      for (let q = p + 1; q < P.length / 3; q++) {
        const d = [0, 1, 2].map((a) => ((P[3 * p + a] - P[3 * q + a]) * sp[a]) / 2);
        d2 = Math.max(d2, d[0] ** 2 + d[1] ** 2 + d[2] ** 2);
      }
    expect(hullMeasures(hull, P, sp).diameterMm).toBeCloseTo(Math.sqrt(d2), 9);
  });
});

describe('ellipsoid area series', () => {
  /** The IBSI series with Legendre polynomials from their explicit sum, P_n(x) = 2^-n sum_k C(n,k)^2 (x-1)^(n-k) (x+1)^k. */
  function seriesByExplicitLegendre(a: number, b: number, c: number): number {
    const alpha = Math.sqrt(1 - (b * b) / (a * a));
    const beta = Math.sqrt(1 - (c * c) / (a * a));
    const x = (alpha ** 2 + beta ** 2) / (2 * alpha * beta);
    const binom = (n: number, k: number) => { let r = 1; for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i; return r; };
    let sum = 0;
    for (let v = 0; v <= 20; v++) {
      let p = 0;
      for (let k = 0; k <= v; k++) p += binom(v, k) ** 2 * (x - 1) ** (v - k) * (x + 1) ** k;
      sum += ((alpha * beta) ** v / (1 - 4 * v * v)) * (p / 2 ** v);
    }
    return 4 * Math.PI * a * b * sum;
  }

  it('is 4 pi r^2 for a sphere and follows the IBSI Legendre series for a tri-axial ellipsoid', () => {
    expect(ellipsoidArea(3, 3, 3)).toBeCloseTo(4 * Math.PI * 9, 9);
    expect(ellipsoidArea(5, 4, 3)).toBeCloseTo(seriesByExplicitLegendre(5, 4, 3), 8);
    expect(ellipsoidArea(9, 8.5, 2)).toBeCloseTo(seriesByExplicitLegendre(9, 8.5, 2), 6);
    // Finite for spheroids, where the explicit form divides by zero.
    expect(Number.isFinite(ellipsoidArea(5, 5, 3))).toBe(true);
  });
});

describe("Moran's I and Geary's C", () => {
  it('agree between the direct pair sum and the FFT evaluation', () => {
    const rand = rng(11);
    const v = shape([14, 11, 9], [0.9, 0.9, 2], () => rand() < 0.8, (i, j, k) => Math.round(40 * Math.sin(i / 3) + 10 * j - 5 * k + 20 * rand()));
    const direct = spatialAutocorrelation(v, 'direct');
    const fft = spatialAutocorrelation(v, 'fft');
    expect(fft.moranI).toBeCloseTo(direct.moranI, 9);
    expect(fft.gearyC).toBeCloseTo(direct.gearyC, 9);
    // A smooth field is positively autocorrelated: I > 0, C < 1.
    expect(direct.moranI).toBeGreaterThan(0);
    expect(direct.gearyC).toBeLessThan(1);
  });
});

function report(label: string, features: Map<string, number>, rows: typeof reference): { passed: number; total: number } {
  const s = score(rows, features).get(FAMILY)!;
  const fails = s.failures.map((f) => `  ${f.tag}: ${f.value?.toPrecision(4)} vs ${f.ref} ± ${f.tolerance}`).join('\n');
  console.log(`${label}: morphology ${s.passed}/${s.total}${fails ? `\n${fails}` : ''}`);
  return s;
}

// Minimum pass counts reached; a drop below them is a regression.
const MIN_PASS: Record<string, number> = { digital_phantom: 25, config_A: 25, config_B: 25, config_C: 24, config_D: 25, config_E: 25 };

describe('IBSI reference values, morphology', () => {
  it('digital phantom: all 25 morphology values', async () => {
    const { image, mask } = await loadDigitalPhantom();
    const m = new Uint8Array(mask.data.length);
    for (let i = 0; i < m.length; i++) m[i] = mask.data[i] ? 1 : 0;
    const vol: RoiVolume = { dims: image.dims, spacingMm: image.spacingMm, intensity: Float64Array.from(image.data), morphMask: m, intensityMask: m.slice() };
    const rows = reference.filter((r) => r.dataSet === 'digital_phantom');
    const s = report('digital_phantom', morphologyFeatures(vol), rows);
    expect(rows.length).toBe(25);
    expect(s.passed).toBeGreaterThanOrEqual(MIN_PASS.digital_phantom);
    // pyradiomics divides the covariance by N: minor 9.24 and least 8.48 on this phantom (research notes).
    const [, l2, l3] = principalAxes(m, vol.dims, maskBox(m, vol.dims)!, vol.spacingMm, 'n');
    expect(Number((4 * Math.sqrt(l2)).toPrecision(3))).toBe(9.24);
    expect(Number((4 * Math.sqrt(l3)).toPrecision(3))).toBe(8.48);
  });

  let ct: { image: RawVolume; mask: RawVolume } | undefined;
  for (const name of ['A', 'B', 'C', 'D', 'E'] as CtConfigName[]) {
    it(`CT phantom config ${name}`, async () => {
      ct ??= await loadCtPhantom();
      const settings = CT_CONFIGS[name];
      const { roi } = prepareRoi(ct.image, ct.mask, settings);
      const t0 = performance.now();
      const features = morphologyFeatures(roi);
      const ms = performance.now() - t0;
      const rows = reference.filter((r) => r.dataSet === settings.name);
      const s = report(`${settings.name} (${ms.toFixed(0)} ms)`, features, rows);
      expect(s.passed).toBeGreaterThanOrEqual(MIN_PASS[settings.name]);
    }, 60_000);
  }
});
