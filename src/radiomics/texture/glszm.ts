/**
 * IBSI grey level size zone matrix (GLSZM, 9SAK) features: `_2D` (per slice, averaged), `_2_5D`
 * (slices merged), `_3D`. Also exports the zones themselves, which the GLDZM reuses.
 */
import type { Discretised, Features, RoiVolume } from '../types.js';
import { FeatureMean, type PaddedRoi, chebyshevNeighbourhood, padRoi, putFeatures, stride } from './glcm.js';
import { COUNT_FEATURES, type CountMatrix, countMatrixFeatures } from './glrlm.js';

/** Connected sets of equal grey level in the intensity mask, in scan order (slice by slice). */
export interface Zones {
  count: number;
  /** Per voxel of the padded box: zone index + 1, 0 outside the intensity mask. */
  label: Int32Array;
  /** Per zone: grey level, number of voxels, slice (z in the padded box) of its first voxel. */
  level: Int32Array;
  size: Int32Array;
  slice: Int32Array;
}

/** Label zones: 26-connectivity in 3-D, 8-connectivity within each slice when `inPlane` (IBSI). */
export function findZones(roi: PaddedRoi, inPlane: boolean): Zones {
  const { levels, pad } = roi;
  const [nx, ny, nz] = roi.dims;
  const steps = Int32Array.from(chebyshevNeighbourhood(1, inPlane), (o) => stride(roi, o));
  const label = new Int32Array(levels.length);
  const level = new Int32Array(roi.nVoxels);
  const size = new Int32Array(roi.nVoxels);
  const slice = new Int32Array(roi.nVoxels);
  const stack = new Int32Array(roi.nVoxels);
  let count = 0;
  for (let z = pad; z < nz - pad; z++) {
    for (let y = pad; y < ny - pad; y++) {
      let v = pad + nx * (y + ny * z);
      for (let x = pad; x < nx - pad; x++, v++) {
        const a = levels[v];
        if (!a || label[v]) continue;
        const id = ++count;
        label[v] = id;
        let top = 0;
        let n = 0;
        stack[top++] = v;
        while (top > 0) {
          const u = stack[--top];
          n++;
          for (let s = 0; s < steps.length; s++) {
            const w = u + steps[s];
            if (levels[w] === a && !label[w]) {
              label[w] = id;
              stack[top++] = w;
            }
          }
        }
        level[id - 1] = a;
        size[id - 1] = n;
        slice[id - 1] = z;
      }
    }
  }
  return { count, label, level: level.subarray(0, count), size: size.subarray(0, count), slice: slice.subarray(0, count) };
}

/**
 * Count matrix of zones [from, to): rows = grey level, columns = the distinct values of `value`
 * (zone size or distance), sorted. N_v = the voxels of those zones (= the intensity-mask voxels they cover).
 */
export function zoneMatrix(zones: Zones, value: ArrayLike<number>, from: number, to: number, ng: number): CountMatrix {
  // Values are positive integers no larger than the ROI, so a dense lookup maps them to columns.
  let nVoxels = 0;
  let maxValue = 0;
  for (let z = from; z < to; z++) {
    nVoxels += zones.size[z];
    if (value[z] > maxValue) maxValue = value[z];
  }
  const column = new Int32Array(maxValue + 1).fill(-1);
  for (let z = from; z < to; z++) column[value[z]] = 0;
  let nc = 0;
  for (let val = 0; val <= maxValue; val++) if (column[val] === 0) column[val] = nc++;
  const colValues = new Float64Array(nc);
  for (let val = 0; val <= maxValue; val++) if (column[val] >= 0) colValues[column[val]] = val;
  const counts = new Float64Array(ng * nc);
  for (let z = from; z < to; z++) counts[(zones.level[z] - 1) * nc + column[value[z]]]++;
  return { ng, colValues, counts, nVoxels };
}

/** Apply `features` to the zones of each slice (2-D: mean over slices), all slices merged (2.5-D). */
export function perSliceAndMerged(
  zones: Zones,
  features: (from: number, to: number) => Float64Array | null,
): { perSlice: Float64Array; merged: Float64Array | null } {
  const mean = new FeatureMean(COUNT_FEATURES);
  for (let from = 0; from < zones.count; ) {
    let to = from + 1;
    while (to < zones.count && zones.slice[to] === zones.slice[from]) to++;
    const f = features(from, to);
    if (f) mean.add(f);
    from = to;
  }
  return { perSlice: mean.mean(), merged: zones.count ? features(0, zones.count) : null };
}

const GLSZM_NAMES = [
  'szm_sze', 'szm_lze', 'szm_lgze', 'szm_hgze', 'szm_szlge', 'szm_szhge', 'szm_lzlge', 'szm_lzhge',
  'szm_glnu', 'szm_glnu_norm', 'szm_zsnu', 'szm_zsnu_norm', 'szm_z_perc', 'szm_gl_var', 'szm_zs_var',
  'szm_zs_entr',
] as const;

/** GLSZM features: `_2D`, `_2_5D`, `_3D`. */
export function glszmFeatures(vol: RoiVolume, disc: Discretised): Features {
  const roi = padRoi(vol, disc, 1);
  const out: Features = new Map();
  const ng = roi.nLevels;
  const sizeFeatures = (zones: Zones) => (from: number, to: number) => countMatrixFeatures(zoneMatrix(zones, zones.size, from, to, ng));

  const zones2 = findZones(roi, true);
  const { perSlice, merged } = perSliceAndMerged(zones2, sizeFeatures(zones2));
  putFeatures(out, GLSZM_NAMES, '_2D', perSlice);
  putFeatures(out, GLSZM_NAMES, '_2_5D', merged);
  const zones3 = findZones(roi, false);
  putFeatures(out, GLSZM_NAMES, '_3D', zones3.count ? sizeFeatures(zones3)(0, zones3.count) : null);
  return out;
}
