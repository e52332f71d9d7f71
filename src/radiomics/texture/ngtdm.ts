/**
 * IBSI neighbourhood grey tone difference matrix (NGTDM, IPET) features: `_2D` (per slice, averaged),
 * `_2_5D` (slices merged), `_3D`.
 *
 * For each intensity-mask voxel k of level i, the neighbourhood mean X̄_k is taken over the
 * intensity-mask voxels within Chebyshev distance δ (in-plane for 2-D), k itself excluded. Voxels with
 * no such neighbour are left out (IBSI). s_i = Σ |i − X̄_k|, n_i = number of voxels counted.
 */
import type { Discretised, Features, RoiVolume } from '../types.js';
import { FeatureMean, type Offset, type PaddedRoi, chebyshevNeighbourhood, padRoi, putFeatures, stride } from './glcm.js';

/** Per grey level (index level − 1): summed absolute differences s_i and voxel counts n_i. */
export interface ToneDifferences {
  s: Float64Array;
  n: Float64Array;
}

const NGTDM_NAMES = ['ngt_coarseness', 'ngt_contrast', 'ngt_busyness', 'ngt_complexity', 'ngt_strength'] as const;

/** Coarseness reported when Σ p_i s_i = 0 (a flat ROI), as IBSI prescribes. */
const MAX_COARSENESS = 1e6;

/** NGTDM features: `_2D`, `_2_5D`, `_3D`; neighbours within Chebyshev `distance`. */
export function ngtdmFeatures(vol: RoiVolume, disc: Discretised, opts: { distance: number }): Features {
  const roi = padRoi(vol, disc, opts.distance);
  const ng = roi.nLevels;
  const out: Features = new Map();
  const zEnd = roi.dims[2] - roi.pad;

  const volume = toneDifferences(roi, chebyshevNeighbourhood(opts.distance, false), roi.pad, zEnd);
  putFeatures(out, NGTDM_NAMES, '_3D', ngtdmMatrixFeatures(volume));

  const inPlane = chebyshevNeighbourhood(opts.distance, true);
  const perSlice = new FeatureMean(NGTDM_NAMES.length);
  const merged: ToneDifferences = { s: new Float64Array(ng), n: new Float64Array(ng) };
  for (let z = roi.pad; z < zEnd; z++) {
    const slice = toneDifferences(roi, inPlane, z, z + 1);
    const f = ngtdmMatrixFeatures(slice);
    if (f) perSlice.add(f);
    for (let i = 0; i < ng; i++) {
      merged.s[i] += slice.s[i];
      merged.n[i] += slice.n[i];
    }
  }
  putFeatures(out, NGTDM_NAMES, '_2D', perSlice.mean());
  putFeatures(out, NGTDM_NAMES, '_2_5D', ngtdmMatrixFeatures(merged));
  return out;
}

/** s_i and n_i over the voxels of slices [z0, z1), with the given neighbour offsets. */
function toneDifferences(roi: PaddedRoi, neighbourhood: readonly Offset[], z0: number, z1: number): ToneDifferences {
  const { levels, pad, nLevels: ng } = roi;
  const [nx, ny] = roi.dims;
  const steps = Int32Array.from(neighbourhood, (o) => stride(roi, o));
  const s = new Float64Array(ng);
  const n = new Float64Array(ng);
  for (let z = z0; z < z1; z++) {
    for (let y = pad; y < ny - pad; y++) {
      let v = pad + nx * (y + ny * z);
      for (let x = pad; x < nx - pad; x++, v++) {
        const a = levels[v];
        if (!a) continue;
        let sum = 0;
        let count = 0;
        for (let k = 0; k < steps.length; k++) {
          const b = levels[v + steps[k]];
          if (b) {
            sum += b;
            count++;
          }
        }
        if (!count) continue;
        s[a - 1] += Math.abs(a - sum / count);
        n[a - 1]++;
      }
    }
  }
  return { s, n };
}

/** Coarseness, contrast, busyness, complexity, strength; null when no voxel had a neighbour. */
export function ngtdmMatrixFeatures({ s, n }: ToneDifferences): Float64Array | null {
  const ng = s.length;
  let nvc = 0;
  let sTotal = 0;
  for (let i = 0; i < ng; i++) {
    nvc += n[i];
    sTotal += s[i];
  }
  if (nvc === 0) return null;
  const present: number[] = [];
  for (let i = 0; i < ng; i++) if (n[i] > 0) present.push(i);
  const p = (i: number): number => n[i] / nvc;
  let ps = 0;
  for (const i of present) ps += p(i) * s[i];
  let contrastSum = 0, busyDen = 0, complexity = 0, strengthNum = 0;
  for (const i of present) {
    for (const j of present) {
      const d = i - j; // level difference; levels are index + 1 so differences are unaffected
      const pi = p(i), pj = p(j);
      contrastSum += pi * pj * d * d;
      busyDen += Math.abs((i + 1) * pi - (j + 1) * pj);
      complexity += (Math.abs(d) * (pi * s[i] + pj * s[j])) / (pi + pj);
      strengthNum += (pi + pj) * d * d;
    }
  }
  const ngp = present.length;
  return Float64Array.of(
    ps === 0 ? MAX_COARSENESS : 1 / ps,
    ngp > 1 ? (contrastSum / (ngp * (ngp - 1))) * (sTotal / nvc) : 0,
    busyDen > 0 ? ps / busyDen : 0,
    complexity / nvc,
    sTotal > 0 ? strengthNum / sTotal : 0,
  );
}
