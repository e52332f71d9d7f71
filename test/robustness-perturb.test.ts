import { describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/schema.js';
import type { Vec3 } from '../src/geometry/types.js';
import { signedDistanceMm, squaredDistanceMm2 } from '../src/robustness/distance.js';
import {
  applyPerturbation,
  noisyImage,
  perturbationCount,
  perturbations,
  type Perturbation,
  type PerturbationSettings,
  type PerturbationStep,
} from '../src/robustness/perturb.js';
import { Random, deriveSeed, hashIndex, normalAt } from '../src/robustness/random.js';

type Dims = [number, number, number];

function settingsFor(intensity: 'mild' | 'standard' | 'aggressive', extra: Partial<PerturbationSettings> = {}): PerturbationSettings {
  const config = configSchema.parse({ radiomics_robustness: { segmentation_perturbation: { intensity, ...extra } } });
  return config.radiomics_robustness.segmentation_perturbation;
}

/** Ellipsoid-free ball of `radiusMm` around voxel `centre` on an anisotropic grid. */
function ball(dims: Dims, spacing: Vec3, centre: Vec3, radiusMm: number): Uint8Array {
  const m = new Uint8Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++) {
        const dx = (i - centre[0]) * spacing[0], dy = (j - centre[1]) * spacing[1], dz = (k - centre[2]) * spacing[2];
        if (dx * dx + dy * dy + dz * dz <= radiusMm * radiusMm) m[(k * dims[1] + j) * dims[0] + i] = 1;
      }
  return m;
}

function count(m: Uint8Array): number {
  let n = 0;
  for (const x of m) n += x;
  return n;
}

function centroidMm(m: Uint8Array, dims: Dims, spacing: Vec3): Vec3 {
  const c: Vec3 = [0, 0, 0];
  let n = 0;
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++)
        if (m[(k * dims[1] + j) * dims[0] + i]) {
          c[0] += i * spacing[0];
          c[1] += j * spacing[1];
          c[2] += k * spacing[2];
          n++;
        }
  return c.map((x) => x / n) as Vec3;
}

function step(over: Partial<PerturbationStep>): PerturbationStep {
  return { noiseHu: 0, translationMm: [0, 0, 0], contourRealisation: 0, contourAmplitudeMm: 2, volumeChange: 0, ...over };
}

function image(dims: Dims, fill = (v: number) => (v % 97) - 40): { dims: Vec3; data: Int16Array } {
  const data = new Int16Array(dims[0] * dims[1] * dims[2]);
  for (let v = 0; v < data.length; v++) data[v] = fill(v);
  return { dims, data };
}

describe('perturbation grid', () => {
  it('gives 12, 81 and 315 perturbations with the default settings, all ids unique', () => {
    for (const [intensity, expected] of [['mild', 12], ['standard', 81], ['aggressive', 315]] as const) {
      const s = settingsFor(intensity);
      const grid = [...perturbations(s, 7)];
      expect(grid.length).toBe(expected);
      expect(perturbationCount(s)).toBe(expected);
      expect(new Set(grid.map((p) => p.id)).size).toBe(expected);
    }
  });

  it('follows the original rule per intensity, with readable ids', () => {
    const mild = [...perturbations(settingsFor('mild'))].map((p) => p.id);
    // one noise level, 0 and ±4 mm along z, the contour and one realisation, the first two volume changes
    const expected: string[] = [];
    for (const t of ['0', 'z+4', 'z-4']) for (const c of [0, 1]) for (const v of ['-15', '0']) expected.push(`n0_t${t}_c${c}_v${v}`);
    expect(mild).toEqual(expected);

    const standard = [...perturbations(settingsFor('standard'))];
    expect(standard.map((p) => p.id)).toContain('n10_tz+4_c1_v-15');
    const byId = new Map(standard.map((p) => [p.id, p]));
    expect(byId.get('n10_tz+4_c1_v-15')).toMatchObject({ noiseHu: 10, translationMm: [0, 0, 4], contourRealisation: 1, volumeChange: -0.15, contourAmplitudeMm: 2 });
    expect(new Set(standard.map((p) => p.translationMm.join(',')))).toEqual(new Set(['0,0,0', '0,0,4', '0,0,-4']));

    const aggressive = [...perturbations(settingsFor('aggressive'))];
    expect(new Set(aggressive.map((p) => p.volumeChange))).toEqual(new Set([-0.3, -0.15, 0, 0.15, 0.3]));
    expect(new Set(aggressive.map((p) => p.id.split('_')[1]))).toEqual(new Set(['t0', 'tx+4', 'tx-4', 'ty+4', 'ty-4', 'tz+4', 'tz-4']));
    expect(aggressive.map((p) => p.id)).toContain('n20_tx-4_c2_v+30');
    expect(aggressive[0].contourAmplitudeMm).toBe(3);
  });

  it('is noise-major, so the image changes only between noise blocks', () => {
    const grid = [...perturbations(settingsFor('standard'))];
    const blocks = grid.map((p) => p.noiseHu);
    expect(blocks).toEqual([...Array(27).fill(0), ...Array(27).fill(10), ...Array(27).fill(20)]);
  });

  it('drops factors that are switched off and honours explicit settings', () => {
    const s = settingsFor('standard', { max_translation_mm: 0, n_random_contour_realizations: 0, noise_levels: [], contour_randomization_mm: 1.5 });
    const grid = [...perturbations(s)];
    expect(grid.map((p) => p.id)).toEqual(['n0_t0_c0_v-15', 'n0_t0_c0_v0', 'n0_t0_c0_v+15']);
    expect(grid[0].contourAmplitudeMm).toBe(1.5);
    expect(() => [...perturbations(settingsFor('standard', { noise_levels: [-5] }))]).toThrow(/noise_levels.*-5/);
    expect(() => [...perturbations(settingsFor('standard', { small_volume_changes: [-1.2] }))]).toThrow(/volume change -1.2/);
  });
});

describe('signed Euclidean distance transform', () => {
  it('matches brute force on random anisotropic masks', () => {
    const rng = new Random(11);
    for (const [dims, spacing] of [
      [[7, 6, 5], [0.8, 1.3, 2.5]],
      [[9, 4, 6], [1, 1, 1]],
      [[5, 8, 3], [2.2, 0.6, 3]],
    ] as [Dims, Vec3][]) {
      const n = dims[0] * dims[1] * dims[2];
      const mask = new Uint8Array(n);
      for (let v = 0; v < n; v++) mask[v] = rng.uniform() < 0.15 ? 1 : 0;
      const d2 = squaredDistanceMm2(mask, dims, spacing);
      const sdf = signedDistanceMm(mask, dims, spacing);
      const pos = (v: number): Vec3 => [(v % dims[0]) * spacing[0], (Math.floor(v / dims[0]) % dims[1]) * spacing[1], Math.floor(v / (dims[0] * dims[1])) * spacing[2]];
      for (let v = 0; v < n; v++) {
        let toIn = Infinity;
        let toOut = Infinity;
        const p = pos(v);
        for (let w = 0; w < n; w++) {
          const q = pos(w);
          const e = (p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2;
          if (mask[w]) toIn = Math.min(toIn, e);
          else toOut = Math.min(toOut, e);
        }
        expect(d2[v]).toBeCloseTo(toIn, 9);
        expect(sdf[v]).toBeCloseTo(mask[v] ? -Math.sqrt(toOut) : Math.sqrt(toIn), 9);
      }
    }
  });

  it('gives Infinity when there is nothing to reach, and rejects a wrong size', () => {
    const d = squaredDistanceMm2(new Uint8Array(8), [2, 2, 2], [1, 1, 1]);
    expect([...d].every((x) => x === Infinity)).toBe(true);
    expect(() => squaredDistanceMm2(new Uint8Array(7), [2, 2, 2], [1, 1, 1])).toThrow(/7 voxels.*2x2x2/);
  });
});

describe('seeded randomness', () => {
  it('gives standard normals and distinct streams', () => {
    const key = deriveSeed(3, 'noise', 10);
    let sum = 0;
    let sq = 0;
    const n = 200_000;
    for (let v = 0; v < n; v++) {
      const x = normalAt(key, v);
      sum += x;
      sq += x * x;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.01);
    expect(Math.abs(sq / n - 1)).toBeLessThan(0.02);
    expect(deriveSeed(3, 'noise', 10)).toBe(key);
    expect(deriveSeed(4, 'noise', 10)).not.toBe(key);
    expect(deriveSeed(3, 'noise', 20)).not.toBe(key);
    const r = new Random(5);
    const draws = Array.from({ length: 50_000 }, () => r.normal());
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    const variance = draws.reduce((a, b) => a + (b - mean) ** 2, 0) / draws.length;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(variance - 1)).toBeLessThan(0.03);
  });
});

describe('applyPerturbation', () => {
  const dims: Dims = [40, 40, 24];
  const spacing: Vec3 = [1, 1, 2];
  const sphere = () => ball(dims, spacing, [20, 19, 11], 9);

  it('adapts the volume to the exact voxel count, nested around the original', () => {
    for (const [d, sp, centre, r] of [
      [dims, spacing, [20, 19, 11], 9],
      [[30, 30, 30], [1, 1, 1], [15, 15, 15], 6],
      [[32, 28, 20], [0.9, 0.9, 2.5], [16, 14, 10], 7.3],
    ] as [Dims, Vec3, Vec3, number][]) {
      const mask = ball(d, sp, centre, r);
      const n = count(mask);
      const img = image(d);
      for (const tau of [-0.3, -0.15, 0.15, 0.3]) {
        const out = applyPerturbation(img, { dims: d, data: mask }, sp, step({ volumeChange: tau }), 1);
        expect(count(out.mask)).toBe(Math.round(n * (1 + tau)));
        expect(out.voxels).toBe(Math.round(n * (1 + tau)));
        for (let v = 0; v < mask.length; v++) {
          if (tau < 0 && out.mask[v]) expect(mask[v]).toBe(1);
          if (tau > 0 && mask[v]) expect(out.mask[v]).toBe(1);
        }
      }
    }
  });

  it.each([
    // An elongated structure near a corner.
    { d: [24, 22, 14] as Dims, sp: [1.2, 1, 2] as Vec3, lo: [1, 2, 1], hi: [20, 5, 4], taus: [-0.4, 0.6, 3] },
    // A short row in the far corner with thick slices: the first box holds enough voxels, but
    // nearer ones lie outside it (diagonal box corners are farther than the next slice).
    { d: [12, 6, 7] as Dims, sp: [0.7, 2, 5] as Vec3, lo: [6, 5, 6], hi: [12, 6, 7], taus: [3] },
  ])('selects the same voxels as ranking the whole image (box growth, %#)', ({ d, sp, lo, hi, taus }) => {
    const mask = new Uint8Array(d[0] * d[1] * d[2]);
    for (let k = lo[2]; k < hi[2]; k++) for (let j = lo[1]; j < hi[1]; j++) for (let i = lo[0]; i < hi[0]; i++) mask[(k * d[1] + j) * d[0] + i] = 1;
    const n = count(mask);
    const seed = 99;
    for (const tau of taus) {
      const out = applyPerturbation(image(d), { dims: d, data: mask }, sp, step({ volumeChange: tau }), seed);
      const target = Math.round(n * (1 + tau));
      const sdf = signedDistanceMm(mask, d, sp);
      const tie = deriveSeed(seed, 'volume-ties');
      const order = Array.from(sdf.keys()).sort((a, b) => sdf[a] - sdf[b] || hashIndex(tie, a) - hashIndex(tie, b) || a - b);
      const expected = new Uint8Array(mask.length);
      for (const v of order.slice(0, target)) expected[v] = 1;
      expect(count(out.mask)).toBe(target);
      expect(Buffer.from(out.mask).equals(Buffer.from(expected))).toBe(true);
    }
  });

  it('moves the centroid by the translation, in mm, and keeps every voxel', () => {
    const mask = sphere();
    const before = centroidMm(mask, dims, spacing);
    for (const t of [[0, 0, 4], [0, 0, -4], [4, 0, 0], [0, -4, 0]] as Vec3[]) {
      const out = applyPerturbation(image(dims), { dims, data: mask }, spacing, step({ translationMm: t }), 1);
      const after = centroidMm(out.mask, dims, spacing);
      for (let a = 0; a < 3; a++) expect(after[a] - before[a]).toBeCloseTo(t[a], 9);
      expect(out.voxels).toBe(count(mask));
      expect(out.notes).toEqual([]);
    }
  });

  it('rounds a translation to whole voxels and says so', () => {
    const sp: Vec3 = [1, 1, 3];
    const mask = ball(dims, sp, [20, 20, 11], 8);
    const out = applyPerturbation(image(dims), { dims, data: mask }, sp, step({ translationMm: [0, 0, 4] }), 1);
    expect(out.appliedTranslationMm).toEqual([0, 0, 3]);
    expect(out.notes.map((n) => n.code)).toEqual(['translation-rounded']);
    const dz = centroidMm(out.mask, dims, sp)[2] - centroidMm(mask, dims, sp)[2];
    expect(dz).toBeCloseTo(3, 9);
  });

  it('reports a translation that clips the structure at the image edge', () => {
    const mask = ball(dims, spacing, [20, 20, 21], 5); // reaches slice 23, the last one
    const n = count(mask);
    const out = applyPerturbation(image(dims), { dims, data: mask }, spacing, step({ translationMm: [0, 0, 4] }), 1);
    let lost = 0; // voxels on slices 22 and 23 go past the top
    for (let v = 0; v < mask.length; v++) if (mask[v] && Math.floor(v / (dims[0] * dims[1])) >= 22) lost++;
    expect(lost).toBeGreaterThan(0);
    const note = out.notes.find((x) => x.code === 'translation-clipped');
    expect(note).toMatchObject({ code: 'translation-clipped', lostVoxels: lost });
    expect(out.voxels).toBe(n - lost);
    expect(count(out.mask)).toBe(n - lost);
    const inside = applyPerturbation(image(dims), { dims, data: mask }, spacing, step({ translationMm: [0, 0, -4] }), 1);
    expect(inside.notes.some((x) => x.code === 'translation-clipped')).toBe(false);
  });

  it('randomises the contour smoothly: about the same size, a changed boundary, only near the surface', () => {
    const sp: Vec3 = [1, 1, 1];
    const d: Dims = [40, 40, 40];
    const mask = ball(d, sp, [20, 20, 20], 11);
    const n = count(mask);
    const sdf = signedDistanceMm(mask, d, sp);
    const amplitude = 2;
    const realisations = [1, 2, 3, 4].map((c) => applyPerturbation(image(d), { dims: d, data: mask }, sp, step({ contourRealisation: c, contourAmplitudeMm: amplitude }), 5).mask);
    for (const out of realisations) {
      const m = count(out);
      expect(Math.abs(m - n) / n).toBeLessThan(0.2);
      let changed = 0;
      let inter = 0;
      for (let v = 0; v < mask.length; v++) {
        if (out[v] !== mask[v]) {
          changed++;
          expect(Math.abs(sdf[v])).toBeLessThanOrEqual(amplitude + 1); // boundary moves at most A (plus the half-voxel surface offset)
        }
        inter += out[v] & mask[v];
      }
      expect(changed).toBeGreaterThan(0.03 * n);
      const dice = (2 * inter) / (n + m);
      expect(dice).toBeGreaterThan(0.8);
      expect(dice).toBeLessThan(0.99);
    }
    expect(Buffer.from(realisations[0]).equals(Buffer.from(realisations[1]))).toBe(false);
  });

  it('applies volume adaptation after contour randomisation, to the randomised count', () => {
    const mask = sphere();
    const img = image(dims);
    const base = applyPerturbation(img, { dims, data: mask }, spacing, step({ translationMm: [0, 0, 4], contourRealisation: 1 }), 8);
    for (const tau of [-0.15, 0.15]) {
      const out = applyPerturbation(img, { dims, data: mask }, spacing, step({ translationMm: [0, 0, 4], contourRealisation: 1, volumeChange: tau }), 8);
      expect(out.voxels).toBe(Math.round(base.voxels * (1 + tau)));
      for (let v = 0; v < mask.length; v++) {
        if (tau < 0 && out.mask[v]) expect(base.mask[v]).toBe(1);
        if (tau > 0 && base.mask[v]) expect(out.mask[v]).toBe(1);
      }
    }
  });

  it('adds Gaussian noise of the requested σ, once per noise level', () => {
    const img = image(dims);
    const noisy = noisyImage(img, 20, 3);
    let sum = 0;
    let sq = 0;
    for (let v = 0; v < noisy.length; v++) {
      const e = noisy[v] - img.data[v];
      sum += e;
      sq += e * e;
    }
    const mean = sum / noisy.length;
    expect(Math.abs(mean)).toBeLessThan(0.3);
    expect(Math.sqrt(sq / noisy.length - mean * mean)).toBeCloseTo(20, 0);
    expect(noisyImage(img, 20, 3)).toBe(noisy); // cached
    // Each voxel's noise is a function of (seed, σ, index) alone: an odd-sized image agrees voxel by voxel.
    const small = { dims: [5, 1, 1] as Vec3, data: new Int16Array([1, 2, 3, 4, 5]) };
    const smallNoisy = noisyImage(small, 20, 3);
    for (let v = 0; v < 5; v++) expect(smallNoisy[v]).toBeCloseTo(noisy[v] - img.data[v] + small.data[v], 3);
    expect(noisyImage(img, 0, 3)).toBe(img.data);
    const p = applyPerturbation(img, { dims, data: sphere() }, spacing, step({ noiseHu: 20 }), 3);
    expect(p.image).toBe(noisy);
  });

  it('is reproducible from the seed, and a different seed gives different masks and images', () => {
    const grid = [...perturbations(settingsFor('standard'), 42)];
    const p = grid.find((x) => x.id === 'n10_tz+4_c1_v-15') as Perturbation;
    const run = (seed?: number) => {
      // Fresh arrays each time, so the caches cannot make the runs agree.
      const img = image(dims);
      const mask = sphere();
      return applyPerturbation(img, { dims, data: mask }, spacing, p, seed);
    };
    const a = run();
    const b = run();
    const c = run(43);
    expect(Buffer.from(a.mask).equals(Buffer.from(b.mask))).toBe(true);
    expect(Buffer.from((a.image as Float32Array).buffer).equals(Buffer.from((b.image as Float32Array).buffer))).toBe(true);
    expect(Buffer.from(a.mask).equals(Buffer.from(c.mask))).toBe(false);
    expect(Buffer.from((a.image as Float32Array).buffer).equals(Buffer.from((c.image as Float32Array).buffer))).toBe(false);
    // The contour of a translation does not depend on the noise level.
    const q = grid.find((x) => x.id === 'n20_tz+4_c1_v-15') as Perturbation;
    const d = applyPerturbation(image(dims), { dims, data: sphere() }, spacing, q);
    expect(Buffer.from(a.mask).equals(Buffer.from(d.mask))).toBe(true);
  });

  it('runs the whole standard grid on a structure and keeps every mask within the image', () => {
    const img = image(dims);
    const mask = { dims, data: sphere() };
    const n = count(mask.data);
    const seen = new Set<string>();
    for (const p of perturbations(settingsFor('standard'), 1)) {
      const out = applyPerturbation(img, mask, spacing, p);
      expect(out.mask.length).toBe(mask.data.length);
      expect(count(out.mask)).toBe(out.voxels);
      expect(out.voxels).toBeGreaterThan(0.6 * n);
      if (p.noiseHu === 0) seen.add(Buffer.from(out.mask).toString('base64'));
    }
    expect(seen.size).toBe(27); // every geometric perturbation gives its own mask
  });

  it('rejects inputs that do not fit, saying what is wrong', () => {
    const mask = { dims, data: sphere() };
    expect(() => applyPerturbation(image([40, 40, 23]), mask, spacing, step({}), 1)).toThrow(/not on the same grid/);
    expect(() => applyPerturbation(image(dims), { dims, data: new Uint8Array(mask.data.length) }, spacing, step({}), 1)).toThrow(/mask is empty/);
    expect(() => applyPerturbation(image(dims), mask, spacing, step({}))).toThrow(/no seed/);
    expect(() => applyPerturbation(image(dims), mask, [1, 0, 2], step({}), 1)).toThrow(/spacing/);
  });
});
