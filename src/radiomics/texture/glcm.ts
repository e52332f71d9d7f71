/**
 * IBSI grey level co-occurrence matrix (GLCM, LFYI) features, in all six aggregations.
 *
 * This module also holds the neighbourhood primitives every texture family shares (IBSI defines
 * them once, with the GLCM): the 13 + 4 direction vectors, the ROI cropped into a zero-padded box so
 * that neighbour look-ups need no bounds checks, and the NaN-skipping mean used to aggregate
 * per-slice / per-direction feature vectors.
 */
import type { Discretised, Features, RoiVolume, Vec3 } from '../types.js';

/** A step on the voxel grid, in voxels along x, y, z. */
export type Offset = readonly [number, number, number];

/** The 13 unique directions of the 3-D 26-neighbourhood (the other 13 are their opposites). */
export const DIRECTIONS_3D: readonly Offset[] = [
  [0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 1], [0, 1, -1], [1, 0, 1], [1, 0, -1],
  [1, 1, 0], [1, -1, 0], [1, 1, 1], [1, 1, -1], [1, -1, 1], [1, -1, -1],
];

/** The 4 unique in-plane directions of the 2-D 8-neighbourhood. */
export const DIRECTIONS_2D: readonly Offset[] = [[1, 0, 0], [1, 1, 0], [0, 1, 0], [-1, 1, 0]];

/**
 * The ROI cropped to its bounding box and padded with `pad` empty voxels on every side, so any
 * neighbour within Chebyshev distance `pad` of an ROI voxel is a valid index. x fastest.
 */
export interface PaddedRoi {
  dims: Vec3;
  pad: number;
  /** Grey level 1..nLevels inside the intensity mask, 0 elsewhere (padding included). */
  levels: Int32Array;
  /** Morphological mask (united with the intensity mask), 0 in the padding. */
  morph: Uint8Array;
  nLevels: number;
  /** Voxels in the intensity mask. */
  nVoxels: number;
}

/** Crop the ROI (both masks) into a box with `pad` empty voxels around it; validates the levels. */
export function padRoi(vol: RoiVolume, disc: Discretised, pad: number): PaddedRoi {
  const [nx, ny, nz] = vol.dims;
  const n = nx * ny * nz;
  if (disc.levels.length !== n || vol.intensityMask.length !== n || vol.morphMask.length !== n) {
    throw new Error(`texture: levels/masks have ${disc.levels.length}/${vol.intensityMask.length}/${vol.morphMask.length} voxels, the grid ${nx}x${ny}x${nz} needs ${n}; pass arrays of the same grid`);
  }
  if (!Number.isInteger(pad) || pad < 1) throw new Error(`texture: neighbourhood distance must be an integer >= 1, got ${pad}`);
  const lo = [nx, ny, nz];
  const hi = [-1, -1, -1];
  for (let k = 0, v = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, v++) {
        if (!vol.morphMask[v] && !vol.intensityMask[v]) continue;
        if (i < lo[0]) lo[0] = i;
        if (i > hi[0]) hi[0] = i;
        if (j < lo[1]) lo[1] = j;
        if (j > hi[1]) hi[1] = j;
        if (k < lo[2]) lo[2] = k;
        if (k > hi[2]) hi[2] = k;
      }
    }
  }
  if (hi[0] < 0) return { dims: [1, 1, 1], pad: 0, levels: new Int32Array(1), morph: new Uint8Array(1), nLevels: disc.nLevels, nVoxels: 0 };
  const dims: Vec3 = [hi[0] - lo[0] + 1 + 2 * pad, hi[1] - lo[1] + 1 + 2 * pad, hi[2] - lo[2] + 1 + 2 * pad];
  const levels = new Int32Array(dims[0] * dims[1] * dims[2]);
  const morph = new Uint8Array(levels.length);
  let nVoxels = 0;
  for (let k = lo[2]; k <= hi[2]; k++) {
    for (let j = lo[1]; j <= hi[1]; j++) {
      let v = lo[0] + nx * (j + ny * k);
      let w = pad + dims[0] * (j - lo[1] + pad + dims[1] * (k - lo[2] + pad));
      for (let i = lo[0]; i <= hi[0]; i++, v++, w++) {
        if (vol.morphMask[v] || vol.intensityMask[v]) morph[w] = 1;
        if (!vol.intensityMask[v]) continue;
        const g = disc.levels[v];
        if (!(g >= 1 && g <= disc.nLevels)) {
          throw new Error(`texture: voxel (${i}, ${j}, ${k}) is in the intensity mask but has grey level ${g}, outside 1..${disc.nLevels}; discretise before computing texture`);
        }
        levels[w] = g;
        nVoxels++;
      }
    }
  }
  return { dims, pad, levels, morph, nLevels: disc.nLevels, nVoxels };
}

/** The offset `o` taken `distance` times. */
export function scaled(o: Offset, distance: number): Offset {
  return [o[0] * distance, o[1] * distance, o[2] * distance];
}

/** Linear index step of an offset in a padded box. */
export function stride(roi: PaddedRoi, o: Offset): number {
  return o[0] + roi.dims[0] * (o[1] + roi.dims[1] * o[2]);
}

/** All offsets with Chebyshev norm 1..distance (excluding 0); in-plane only for 2-D. */
export function chebyshevNeighbourhood(distance: number, inPlane: boolean): Offset[] {
  const out: Offset[] = [];
  const dz = inPlane ? 0 : distance;
  for (let z = -dz; z <= dz; z++) {
    for (let y = -distance; y <= distance; y++) {
      for (let x = -distance; x <= distance; x++) if (x || y || z) out.push([x, y, z]);
    }
  }
  return out;
}

/** Mean of feature vectors, per feature ignoring NaN entries (a matrix where a feature is undefined). */
export class FeatureMean {
  private readonly sum: Float64Array;
  private readonly count: Uint32Array;
  constructor(size: number) {
    this.sum = new Float64Array(size);
    this.count = new Uint32Array(size);
  }
  add(values: Float64Array): void {
    for (let f = 0; f < values.length; f++) {
      if (Number.isNaN(values[f])) continue;
      this.sum[f] += values[f];
      this.count[f]++;
    }
  }
  mean(): Float64Array {
    return this.sum.map((s, f) => (this.count[f] ? s / this.count[f] : Number.NaN));
  }
}

/** Store `values` under `name + suffix`; a missing vector (no matrix at all) gives NaN. */
export function putFeatures(out: Features, names: readonly string[], suffix: string, values: Float64Array | null): void {
  names.forEach((name, f) => out.set(name + suffix, values ? values[f] : Number.NaN));
}

const GLCM_NAMES = [
  'cm_joint_max', 'cm_joint_avg', 'cm_joint_var', 'cm_joint_entr', 'cm_diff_avg', 'cm_diff_var',
  'cm_diff_entr', 'cm_sum_avg', 'cm_sum_var', 'cm_sum_entr', 'cm_energy', 'cm_contrast',
  'cm_dissimilarity', 'cm_inv_diff', 'cm_inv_diff_norm', 'cm_inv_diff_mom', 'cm_inv_diff_mom_norm',
  'cm_inv_var', 'cm_corr', 'cm_auto_corr', 'cm_clust_tend', 'cm_clust_shade', 'cm_clust_prom',
  'cm_info_corr1', 'cm_info_corr2',
] as const;

/**
 * GLCM features with IBSI aggregations: `_2D_avg` (per slice and direction, averaged), `_2D_comb`
 * (per slice, directions merged, averaged over slices), `_2_5D_avg` (per direction, slices merged,
 * averaged over directions), `_2_5D_comb` (one matrix), `_3D_avg` (13 directions averaged),
 * `_3D_comb` (13 directions merged). Symmetric matrices, neighbours at Chebyshev distance `distance`.
 */
export function glcmFeatures(vol: RoiVolume, disc: Discretised, opts: { distance: number }): Features {
  const roi = padRoi(vol, disc, opts.distance);
  const ng = roi.nLevels;
  const out: Features = new Map();
  const nf = GLCM_NAMES.length;
  const values = new Float64Array(nf);
  const featuresOf = (m: Float64Array): Float64Array | null => (glcmMatrixFeatures(m, ng, values) ? values : null);

  // 3-D: one matrix per direction over the whole volume.
  const avg3 = new FeatureMean(nf);
  const comb3 = new Float64Array(ng * ng);
  const m = new Float64Array(ng * ng);
  for (const dir of DIRECTIONS_3D) {
    m.fill(0);
    countPairs(roi, scaled(dir, opts.distance), roi.pad, roi.dims[2] - roi.pad, m);
    const f = featuresOf(m);
    if (f) avg3.add(f);
    addInto(comb3, m);
  }

  // 2-D: one matrix per (slice, in-plane direction).
  const avg2 = new FeatureMean(nf);
  const comb2 = new FeatureMean(nf);
  const perDir = DIRECTIONS_2D.map(() => new Float64Array(ng * ng));
  const slice = new Float64Array(ng * ng);
  for (let z = roi.pad; z < roi.dims[2] - roi.pad; z++) {
    slice.fill(0);
    DIRECTIONS_2D.forEach((dir, d) => {
      m.fill(0);
      countPairs(roi, scaled(dir, opts.distance), z, z + 1, m);
      const f = featuresOf(m);
      if (f) avg2.add(f);
      addInto(slice, m);
      addInto(perDir[d], m);
    });
    const f = featuresOf(slice);
    if (f) comb2.add(f);
  }
  const avg25 = new FeatureMean(nf);
  const comb25 = new Float64Array(ng * ng);
  for (const md of perDir) {
    const f = featuresOf(md);
    if (f) avg25.add(f);
    addInto(comb25, md);
  }

  putFeatures(out, GLCM_NAMES, '_2D_avg', avg2.mean());
  putFeatures(out, GLCM_NAMES, '_2D_comb', comb2.mean());
  putFeatures(out, GLCM_NAMES, '_2_5D_avg', avg25.mean());
  putFeatures(out, GLCM_NAMES, '_2_5D_comb', featuresOf(comb25));
  putFeatures(out, GLCM_NAMES, '_3D_avg', avg3.mean());
  putFeatures(out, GLCM_NAMES, '_3D_comb', featuresOf(comb3));
  return out;
}

function addInto(target: Float64Array, m: Float64Array): void {
  for (let i = 0; i < m.length; i++) target[i] += m[i];
}

/** Add the symmetric co-occurrence counts of offset `o` for voxels in slices [z0, z1) to `m` (ng x ng). */
function countPairs(roi: PaddedRoi, o: Offset, z0: number, z1: number, m: Float64Array): void {
  const { levels, pad, nLevels: ng } = roi;
  const [nx, ny] = roi.dims;
  const step = stride(roi, o);
  for (let z = z0; z < z1; z++) {
    for (let y = pad; y < ny - pad; y++) {
      let v = pad + nx * (y + ny * z);
      for (let x = pad; x < nx - pad; x++, v++) {
        const a = levels[v];
        if (!a) continue;
        const b = levels[v + step];
        if (!b) continue;
        m[(a - 1) * ng + (b - 1)]++;
        m[(b - 1) * ng + (a - 1)]++;
      }
    }
  }
}

/**
 * The 25 IBSI GLCM features of one count matrix (ng x ng, row = level - 1), written into `out`.
 * Returns false when the matrix is empty. N_g for the normalised inverse differences is the number of
 * discretised levels, whether or not they occur (IBSI).
 */
export function glcmMatrixFeatures(counts: Float64Array, ng: number, out: Float64Array): boolean {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (total === 0) return false;
  const pi = new Float64Array(ng);
  const pj = new Float64Array(ng);
  const pDiff = new Float64Array(ng);
  const pSum = new Float64Array(2 * ng + 1);
  let jointMax = 0, energy = 0, contrast = 0, dissim = 0, invDiff = 0, invDiffN = 0, idm = 0, idmn = 0;
  let autoCorr = 0, hxy = 0;
  const ng2 = ng * ng;
  for (let i = 0; i < ng; i++) {
    for (let j = 0; j < ng; j++) {
      const c = counts[i * ng + j];
      if (c === 0) continue;
      const p = c / total;
      const d = Math.abs(i - j);
      if (p > jointMax) jointMax = p;
      energy += p * p;
      contrast += d * d * p;
      dissim += d * p;
      invDiff += p / (1 + d);
      invDiffN += p / (1 + d / ng);
      idm += p / (1 + d * d);
      idmn += p / (1 + (d * d) / ng2);
      autoCorr += (i + 1) * (j + 1) * p;
      hxy -= p * Math.log2(p);
      pi[i] += p;
      pj[j] += p;
      pDiff[d] += p;
      pSum[i + j + 2] += p;
    }
  }
  let muI = 0, muJ = 0;
  for (let i = 0; i < ng; i++) {
    muI += (i + 1) * pi[i];
    muJ += (i + 1) * pj[i];
  }
  let varI = 0, varJ = 0, hx = 0, hy = 0;
  for (let i = 0; i < ng; i++) {
    varI += (i + 1 - muI) ** 2 * pi[i];
    varJ += (i + 1 - muJ) ** 2 * pj[i];
    if (pi[i] > 0) hx -= pi[i] * Math.log2(pi[i]);
    if (pj[i] > 0) hy -= pj[i] * Math.log2(pj[i]);
  }
  let clustTend = 0, clustShade = 0, clustProm = 0, hxy1 = 0, hxy2 = 0;
  for (let i = 0; i < ng; i++) {
    for (let j = 0; j < ng; j++) {
      const q = pi[i] * pj[j];
      if (q > 0) hxy2 -= q * Math.log2(q);
      const c = counts[i * ng + j];
      if (c === 0) continue;
      const p = c / total;
      const t = i + j + 2 - muI - muJ;
      const t2 = t * t;
      clustTend += t2 * p;
      clustShade += t2 * t * p;
      clustProm += t2 * t2 * p;
      hxy1 -= p * Math.log2(q);
    }
  }
  const { mean: diffAvg, variance: diffVar, entropy: diffEntr } = distributionMoments(pDiff);
  const { mean: sumAvg, variance: sumVar, entropy: sumEntr } = distributionMoments(pSum);
  let invVar = 0;
  for (let k = 1; k < ng; k++) invVar += pDiff[k] / (k * k);
  const hxMax = Math.max(hx, hy);
  const values = [
    jointMax, muI, varI, hxy, diffAvg, diffVar, diffEntr, sumAvg, sumVar, sumEntr, energy, contrast,
    dissim, invDiff, invDiffN, idm, idmn, invVar,
    (autoCorr - muI * muJ) / Math.sqrt(varI * varJ), // NaN for a single-level matrix
    autoCorr, clustTend, clustShade, clustProm,
    hxMax > 0 ? (hxy - hxy1) / hxMax : Number.NaN,
    Math.sqrt(Math.max(0, 1 - Math.exp(-2 * (hxy2 - hxy)))),
  ];
  for (let f = 0; f < values.length; f++) out[f] = values[f];
  return true;
}

/** Mean, variance and entropy (log2) of a distribution p[k] over the values k. */
function distributionMoments(p: Float64Array): { mean: number; variance: number; entropy: number } {
  let mean = 0, entropy = 0;
  for (let k = 0; k < p.length; k++) {
    mean += k * p[k];
    if (p[k] > 0) entropy -= p[k] * Math.log2(p[k]);
  }
  let variance = 0;
  for (let k = 0; k < p.length; k++) variance += (k - mean) ** 2 * p[k];
  return { mean, variance, entropy };
}
