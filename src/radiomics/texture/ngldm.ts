/**
 * IBSI neighbouring grey level dependence matrix (NGLDM, REK0) features: `_2D` (per slice,
 * averaged), `_2_5D` (slices merged), `_3D`.
 *
 * Every intensity-mask voxel is a centre. Its dependence count j is 1 (the centre itself) plus the
 * intensity-mask neighbours within Chebyshev distance δ (in-plane for 2-D) whose level differs from the
 * centre's by at most α (the coarseness parameter).
 */
import type { Discretised, Features, RoiVolume } from '../types.js';
import { FeatureMean, type Offset, type PaddedRoi, chebyshevNeighbourhood, padRoi, putFeatures, stride } from './glcm.js';
import { type CountMatrix, countMatrixFeatures } from './glrlm.js';

const NGLDM_NAMES = [
  'ngl_lde', 'ngl_hde', 'ngl_lgce', 'ngl_hgce', 'ngl_ldlge', 'ngl_ldhge', 'ngl_hdlge', 'ngl_hdhge',
  'ngl_glnu', 'ngl_glnu_norm', 'ngl_dcnu', 'ngl_dcnu_norm', 'ngl_dc_perc', 'ngl_gl_var', 'ngl_dc_var',
  'ngl_dc_entr', 'ngl_dc_energy',
] as const;

/** NGLDM features: `_2D`, `_2_5D`, `_3D`; neighbours within Chebyshev `distance`, coarseness `alpha`. */
export function ngldmFeatures(vol: RoiVolume, disc: Discretised, opts: { distance: number; alpha: number }): Features {
  if (!(opts.alpha >= 0)) throw new Error(`ngldm: coarseness alpha must be >= 0, got ${opts.alpha}`);
  const roi = padRoi(vol, disc, opts.distance);
  const out: Features = new Map();
  const zEnd = roi.dims[2] - roi.pad;

  const neighbours3 = chebyshevNeighbourhood(opts.distance, false);
  putFeatures(out, NGLDM_NAMES, '_3D', countMatrixFeatures(dependenceMatrix(roi, neighbours3, opts.alpha, roi.pad, zEnd)));

  const neighbours2 = chebyshevNeighbourhood(opts.distance, true);
  const perSlice = new FeatureMean(NGLDM_NAMES.length);
  let merged: CountMatrix | null = null;
  for (let z = roi.pad; z < zEnd; z++) {
    const m = dependenceMatrix(roi, neighbours2, opts.alpha, z, z + 1);
    const f = countMatrixFeatures(m);
    if (f) perSlice.add(f);
    if (!merged) merged = m;
    else {
      for (let i = 0; i < m.counts.length; i++) merged.counts[i] += m.counts[i];
      merged.nVoxels += m.nVoxels;
    }
  }
  putFeatures(out, NGLDM_NAMES, '_2D', perSlice.mean());
  putFeatures(out, NGLDM_NAMES, '_2_5D', merged ? countMatrixFeatures(merged) : null);
  return out;
}

/** Dependence count matrix (levels x counts 1..neighbours + 1) of the voxels in slices [z0, z1). */
function dependenceMatrix(roi: PaddedRoi, neighbourhood: readonly Offset[], alpha: number, z0: number, z1: number): CountMatrix {
  const { levels, pad, nLevels: ng } = roi;
  const [nx, ny] = roi.dims;
  const steps = Int32Array.from(neighbourhood, (o) => stride(roi, o));
  const nc = steps.length + 1;
  const m: CountMatrix = { ng, colValues: Float64Array.from({ length: nc }, (_, c) => c + 1), counts: new Float64Array(ng * nc), nVoxels: 0 };
  for (let z = z0; z < z1; z++) {
    for (let y = pad; y < ny - pad; y++) {
      let v = pad + nx * (y + ny * z);
      for (let x = pad; x < nx - pad; x++, v++) {
        const a = levels[v];
        if (!a) continue;
        let j = 1;
        for (let k = 0; k < steps.length; k++) {
          const b = levels[v + steps[k]];
          if (b && Math.abs(a - b) <= alpha) j++;
        }
        m.counts[(a - 1) * nc + j - 1]++;
        m.nVoxels++;
      }
    }
  }
  return m;
}
