/**
 * IBSI grey level run length matrix (GLRLM, TP0I) features, in all six aggregations.
 *
 * Also exports the feature set IBSI defines identically (up to names) for every "grey level x count"
 * matrix — run length (GLRLM), zone size (GLSZM), zone distance (GLDZM), dependence count (NGLDM) —
 * so the four families share one implementation.
 */
import type { Discretised, Features, RoiVolume } from '../types.js';
import { DIRECTIONS_2D, DIRECTIONS_3D, FeatureMean, type Offset, type PaddedRoi, padRoi, putFeatures, stride } from './glcm.js';

/**
 * A matrix of counts by grey level (rows, level 1..ng) and a second property (columns: run length,
 * zone size, distance or dependence count, whose values are `colValues`). Row-major, ng x colValues.length.
 */
export interface CountMatrix {
  ng: number;
  colValues: Float64Array;
  counts: Float64Array;
  /** Voxels the matrix was built from (merged matrices: summed), the denominator of the percentage. */
  nVoxels: number;
}

/** Number of values countMatrixFeatures returns. */
export const COUNT_FEATURES = 17;

/**
 * The IBSI features of a count matrix, in this order: small / large count emphasis, low / high grey
 * level emphasis, small-low, small-high, large-low, large-high emphasis, grey level non-uniformity
 * (plain, normalised), count non-uniformity (plain, normalised), percentage (N_s / N_v), grey level
 * variance, count variance, count entropy, count energy (NGLDM only). Null for an empty matrix.
 */
export function countMatrixFeatures(m: CountMatrix): Float64Array | null {
  const { ng, colValues, counts } = m;
  const nc = colValues.length;
  let ns = 0;
  for (let i = 0; i < counts.length; i++) ns += counts[i];
  if (ns === 0) return null;
  const rowSum = new Float64Array(ng);
  const colSum = new Float64Array(nc);
  let se = 0, le = 0, lge = 0, hge = 0, slge = 0, shge = 0, llge = 0, lhge = 0;
  let muI = 0, muJ = 0, entropy = 0, energy = 0;
  for (let i = 0; i < ng; i++) {
    const g2 = (i + 1) * (i + 1);
    for (let c = 0; c < nc; c++) {
      const r = counts[i * nc + c];
      if (r === 0) continue;
      const j2 = colValues[c] * colValues[c];
      se += r / j2;
      le += r * j2;
      lge += r / g2;
      hge += r * g2;
      slge += r / (g2 * j2);
      shge += (r * g2) / j2;
      llge += (r * j2) / g2;
      lhge += r * g2 * j2;
      rowSum[i] += r;
      colSum[c] += r;
      const p = r / ns;
      muI += (i + 1) * p;
      muJ += colValues[c] * p;
      entropy -= p * Math.log2(p);
      energy += p * p;
    }
  }
  let glnu = 0, cnu = 0, glVar = 0, cVar = 0;
  for (let i = 0; i < ng; i++) {
    glnu += rowSum[i] * rowSum[i];
    glVar += (i + 1 - muI) ** 2 * rowSum[i];
  }
  for (let c = 0; c < nc; c++) {
    cnu += colSum[c] * colSum[c];
    cVar += (colValues[c] - muJ) ** 2 * colSum[c];
  }
  return Float64Array.of(
    se / ns, le / ns, lge / ns, hge / ns, slge / ns, shge / ns, llge / ns, lhge / ns,
    glnu / ns, glnu / (ns * ns), cnu / ns, cnu / (ns * ns), ns / m.nVoxels,
    glVar / ns, cVar / ns, entropy, energy,
  );
}

const GLRLM_NAMES = [
  'rlm_sre', 'rlm_lre', 'rlm_lgre', 'rlm_hgre', 'rlm_srlge', 'rlm_srhge', 'rlm_lrlge', 'rlm_lrhge',
  'rlm_glnu', 'rlm_glnu_norm', 'rlm_rlnu', 'rlm_rlnu_norm', 'rlm_r_perc', 'rlm_gl_var', 'rlm_rl_var',
  'rlm_rl_entr',
] as const;

/**
 * GLRLM features with the six IBSI aggregations (as for the GLCM: `_2D_avg`, `_2D_comb`, `_2_5D_avg`,
 * `_2_5D_comb`, `_3D_avg`, `_3D_comb`). Runs stop at the intensity-mask edge. Merging matrices also
 * sums their voxel counts, so run percentage of a merged matrix divides by (directions x N_v).
 */
export function glrlmFeatures(vol: RoiVolume, disc: Discretised): Features {
  const roi = padRoi(vol, disc, 1);
  const ng = roi.nLevels;
  const maxLen = Math.max(1, ...roi.dims);
  const colValues = Float64Array.from({ length: maxLen }, (_, c) => c + 1);
  const matrix = (): CountMatrix => ({ ng, colValues, counts: new Float64Array(ng * maxLen), nVoxels: 0 });
  const merge = (target: CountMatrix, m: CountMatrix): void => {
    for (let i = 0; i < m.counts.length; i++) target.counts[i] += m.counts[i];
    target.nVoxels += m.nVoxels;
  };
  const nf = GLRLM_NAMES.length;
  const out: Features = new Map();

  const avg3 = new FeatureMean(nf);
  const comb3 = matrix();
  for (const dir of DIRECTIONS_3D) {
    const m = matrix();
    countRuns(roi, dir, roi.pad, roi.dims[2] - roi.pad, m);
    const f = countMatrixFeatures(m);
    if (f) avg3.add(f);
    merge(comb3, m);
  }

  const avg2 = new FeatureMean(nf);
  const comb2 = new FeatureMean(nf);
  const perDir = DIRECTIONS_2D.map(matrix);
  for (let z = roi.pad; z < roi.dims[2] - roi.pad; z++) {
    const slice = matrix();
    DIRECTIONS_2D.forEach((dir, d) => {
      const m = matrix();
      countRuns(roi, dir, z, z + 1, m);
      const f = countMatrixFeatures(m);
      if (f) avg2.add(f);
      merge(slice, m);
      merge(perDir[d], m);
    });
    const f = countMatrixFeatures(slice);
    if (f) comb2.add(f);
  }
  const avg25 = new FeatureMean(nf);
  const comb25 = matrix();
  for (const m of perDir) {
    const f = countMatrixFeatures(m);
    if (f) avg25.add(f);
    merge(comb25, m);
  }

  putFeatures(out, GLRLM_NAMES, '_2D_avg', avg2.mean());
  putFeatures(out, GLRLM_NAMES, '_2D_comb', comb2.mean());
  putFeatures(out, GLRLM_NAMES, '_2_5D_avg', avg25.mean());
  putFeatures(out, GLRLM_NAMES, '_2_5D_comb', countMatrixFeatures(comb25));
  putFeatures(out, GLRLM_NAMES, '_3D_avg', avg3.mean());
  putFeatures(out, GLRLM_NAMES, '_3D_comb', countMatrixFeatures(comb3));
  return out;
}

/** Add the runs along `o` that start in slices [z0, z1) to `m`, and those slices' voxels to m.nVoxels. */
function countRuns(roi: PaddedRoi, o: Offset, z0: number, z1: number, m: CountMatrix): void {
  const { levels, pad } = roi;
  const [nx, ny] = roi.dims;
  const nc = m.colValues.length;
  const step = stride(roi, o);
  for (let z = z0; z < z1; z++) {
    for (let y = pad; y < ny - pad; y++) {
      let v = pad + nx * (y + ny * z);
      for (let x = pad; x < nx - pad; x++, v++) {
        const a = levels[v];
        if (!a) continue;
        m.nVoxels++;
        if (levels[v - step] === a) continue; // not the first voxel of its run
        let len = 1;
        for (let u = v + step; levels[u] === a; u += step) len++;
        m.counts[(a - 1) * nc + len - 1]++;
      }
    }
  }
}
