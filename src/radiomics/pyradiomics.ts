/**
 * pyradiomics-compatible feature extraction: pyradiomics' names (`original_firstorder_Mean`,
 * `log-sigma-1-0-mm-3D_glcm_Contrast`, `wavelet-LLH_glszm_ZoneEntropy`, `original_shape_*`) and its
 * semantics (featureextractor.py): normalise → resample (corner-aligned grid, ROI box ± padDistance)
 * → shape on the non-re-segmented mask → re-segment → per image type (Original, LoG, Wavelet) and
 * class: bin from 0 with binWidth (or binCount), features.
 *
 * Matrices: GLCM per angle (pyradiomics-features.ts); GLRLM, GLSZM, GLDM (= IBSI NGLDM with
 * α = gldm_a) and NGTDM are IBSI's (texture/*.ts) with N_g = the highest grey level in the ROI,
 * read from the aggregation pyradiomics uses: 3-D, per angle averaged (weightingNorm None) or merged
 * (weightingNorm set); force2D = the 2.5-D aggregations in the plane of force2Ddimension.
 *
 * Not reproduced: the image types Square, SquareRoot, Logarithm, Exponential, Gradient, LBP2D/3D;
 * the shape2D class; GLRLM distance weighting other than no_weighting; the sitk interpolators other
 * than nearest, linear and B-spline. These raise an error naming the setting.
 */
import type { Grid } from '../geometry/types.js';
import { laplacianOfGaussian, logImageName, logMarginVoxels } from './filters/log.js';
import { waveletImages } from './filters/wavelet.js';
import type { FeatureClassName, ImageTypeName, PyradiomicsParams, PyradiomicsSetting } from './params.js';
import { firstOrderFeatures, glcmPyradiomics, shapeFeatures } from './pyradiomics-features.js';
import { binEdges, digitize, maskBounds, normalizeImage, resamplePyradiomics, resegmentPyradiomics } from './pyradiomics-preprocess.js';
import type { RawVolume } from './preprocess.js';
import { glrlmFeatures } from './texture/glrlm.js';
import { glszmFeatures } from './texture/glszm.js';
import { ngldmFeatures } from './texture/ngldm.js';
import { ngtdmFeatures } from './texture/ngtdm.js';
import type { RoiVolume, Vec3 } from './types.js';

/** pyradiomics feature name → IBSI tag base of the same quantity, per matrix family. */
const RLM: Record<string, string> = {
  ShortRunEmphasis: 'rlm_sre', LongRunEmphasis: 'rlm_lre', GrayLevelNonUniformity: 'rlm_glnu', GrayLevelNonUniformityNormalized: 'rlm_glnu_norm',
  RunLengthNonUniformity: 'rlm_rlnu', RunLengthNonUniformityNormalized: 'rlm_rlnu_norm', RunPercentage: 'rlm_r_perc', GrayLevelVariance: 'rlm_gl_var',
  RunVariance: 'rlm_rl_var', RunEntropy: 'rlm_rl_entr', LowGrayLevelRunEmphasis: 'rlm_lgre', HighGrayLevelRunEmphasis: 'rlm_hgre',
  ShortRunLowGrayLevelEmphasis: 'rlm_srlge', ShortRunHighGrayLevelEmphasis: 'rlm_srhge', LongRunLowGrayLevelEmphasis: 'rlm_lrlge', LongRunHighGrayLevelEmphasis: 'rlm_lrhge',
};
const SZM: Record<string, string> = {
  SmallAreaEmphasis: 'szm_sze', LargeAreaEmphasis: 'szm_lze', GrayLevelNonUniformity: 'szm_glnu', GrayLevelNonUniformityNormalized: 'szm_glnu_norm',
  SizeZoneNonUniformity: 'szm_zsnu', SizeZoneNonUniformityNormalized: 'szm_zsnu_norm', ZonePercentage: 'szm_z_perc', GrayLevelVariance: 'szm_gl_var',
  ZoneVariance: 'szm_zs_var', ZoneEntropy: 'szm_zs_entr', LowGrayLevelZoneEmphasis: 'szm_lgze', HighGrayLevelZoneEmphasis: 'szm_hgze',
  SmallAreaLowGrayLevelEmphasis: 'szm_szlge', SmallAreaHighGrayLevelEmphasis: 'szm_szhge', LargeAreaLowGrayLevelEmphasis: 'szm_lzlge', LargeAreaHighGrayLevelEmphasis: 'szm_lzhge',
};
const DM: Record<string, string> = {
  SmallDependenceEmphasis: 'ngl_lde', LargeDependenceEmphasis: 'ngl_hde', GrayLevelNonUniformity: 'ngl_glnu', GrayLevelNonUniformityNormalized: 'ngl_glnu_norm',
  DependenceNonUniformity: 'ngl_dcnu', DependenceNonUniformityNormalized: 'ngl_dcnu_norm', DependencePercentage: 'ngl_dc_perc', GrayLevelVariance: 'ngl_gl_var',
  DependenceVariance: 'ngl_dc_var', DependenceEntropy: 'ngl_dc_entr', LowGrayLevelEmphasis: 'ngl_lgce', HighGrayLevelEmphasis: 'ngl_hgce',
  SmallDependenceLowGrayLevelEmphasis: 'ngl_ldlge', SmallDependenceHighGrayLevelEmphasis: 'ngl_ldhge', LargeDependenceLowGrayLevelEmphasis: 'ngl_hdlge', LargeDependenceHighGrayLevelEmphasis: 'ngl_hdhge',
};
const NGT: Record<string, string> = { Coarseness: 'ngt_coarseness', Contrast: 'ngt_contrast', Busyness: 'ngt_busyness', Complexity: 'ngt_complexity', Strength: 'ngt_strength' };

export type PyradiomicsImage = RawVolume & { grid?: Grid };

/** A cropped region of the (processed) image: the ROI box, values x fastest. */
interface Region {
  dims: Vec3;
  spacingMm: Vec3;
  values: Float64Array;
  /** Re-segmented ROI (texture and first order). */
  mask: Uint8Array;
}

const INTEGER_ARRAYS = [Int8Array, Uint8Array, Int16Array, Uint16Array, Int32Array, Uint32Array];

/**
 * Features of one ROI with pyradiomics' names and semantics. `mask` voxels equal to the label
 * (opts.label, else setting.label) form the ROI; image and mask share one grid.
 */
export function extractPyradiomics(image: PyradiomicsImage, mask: RawVolume, params: PyradiomicsParams, opts: { label?: number } = {}): Map<string, number> {
  const setting = params.setting;
  const label = opts.label ?? setting.label;
  if (image.dims.some((d, a) => d !== mask.dims[a])) throw new Error(`image ${image.dims.join('x')} and mask ${mask.dims.join('x')} differ in size; they must share one grid`);
  let roi: Uint8Array = new Uint8Array(mask.data.length);
  for (let i = 0; i < roi.length; i++) roi[i] = mask.data[i] === label ? 1 : 0;
  if (!maskBounds(roi, mask.dims)) throw new Error(`the mask has no voxel with label ${label}; check --label / setting.label`);

  let data: ArrayLike<number> = image.data;
  let dims: Vec3 = [...image.dims];
  let spacing: Vec3 = [...image.spacingMm];
  const integer = INTEGER_ARRAYS.some((c) => image.data instanceof c);
  if (setting.normalize) data = normalizeImage(data, setting.normalizeScale, setting.removeOutliers);
  const resampled = resamplePyradiomics({ dims, spacingMm: spacing, data }, roi, setting, integer && !setting.normalize);
  if (resampled) {
    data = resampled.image.data;
    dims = resampled.image.dims;
    spacing = resampled.image.spacingMm;
    roi = resampled.mask;
  }
  const bounds = maskBounds(roi, dims);
  if (!bounds) throw new Error('the ROI is empty after resampling');
  const extent = bounds.hi.map((h, a) => h - bounds.lo[a] + 1);
  const nDims = extent.filter((e) => e > 1).length;
  if (nDims < setting.minimumROIDimensions) throw new Error(`the ROI spans ${nDims} dimension(s) (box ${extent.join('x')}), minimumROIDimensions is ${setting.minimumROIDimensions}`);
  if (setting.minimumROISize !== null && bounds.count < setting.minimumROISize) throw new Error(`the ROI has ${bounds.count} voxels, fewer than minimumROISize ${setting.minimumROISize}`);
  const segmented = setting.resegmentRange ? resegmentPyradiomics(data, roi, setting.resegmentRange, setting.resegmentMode) : roi;

  const out = new Map<string, number>();
  const shapeNames = params.featureClasses.get('shape');
  if (shapeNames) {
    const shapeMask = setting.resegmentShape ? segmented : roi;
    const box = crop(shapeMask, dims, bounds.lo, bounds.hi);
    const f = shapeFeatures(Uint8Array.from(box), extent as Vec3, spacing);
    for (const name of shapeNames) out.set(`original_shape_${name}`, f.get(name) as number);
  }
  if (params.featureClasses.has('shape2D')) throw new Error('featureClass shape2D is not implemented; remove it from the parameter file');

  const regionOf = (values: ArrayLike<number>, fullDims: Vec3, lo: Vec3): Region => {
    const hi = lo.map((l, a) => l + extent[a] - 1) as Vec3;
    return { dims: extent as Vec3, spacingMm: spacing, values: crop(values, fullDims, lo, hi), mask: Uint8Array.from(crop(segmented, dims, bounds.lo, bounds.hi)) };
  };
  for (const [type, typeSetting] of params.imageTypes) {
    for (const { name, region } of filteredRegions(type, typeSetting, data, dims, spacing, bounds, regionOf)) {
      for (const [k, v] of regionFeatures(region, typeSetting, params.featureClasses)) out.set(`${name}_${k}`, v);
    }
  }
  return out;
}

/** The images of one image type, each cropped to the ROI box. */
function* filteredRegions(
  type: ImageTypeName,
  setting: PyradiomicsSetting,
  data: ArrayLike<number>,
  dims: Vec3,
  spacing: Vec3,
  bounds: { lo: Vec3; hi: Vec3 },
  regionOf: (values: ArrayLike<number>, fullDims: Vec3, lo: Vec3) => Region,
): Generator<{ name: string; region: Region }> {
  if (type === 'Original') {
    yield { name: 'original', region: regionOf(data, dims, bounds.lo) };
  } else if (type === 'LoG') {
    for (const sigma of setting.sigma ?? []) {
      // pyradiomics skips a sigma the image is too small for.
      if (dims.some((d, a) => d < Math.ceil(sigma / spacing[a]) + 1)) continue;
      // The LoG at the ROI only needs the kernel's reach around it: filter that sub-box.
      const margin = logMarginVoxels(sigma, spacing);
      const lo = bounds.lo.map((l, a) => Math.max(0, l - margin[a])) as Vec3;
      const hi = bounds.hi.map((h, a) => Math.min(dims[a] - 1, h + margin[a])) as Vec3;
      const subDims = hi.map((h, a) => h - lo[a] + 1) as Vec3;
      const filtered = laplacianOfGaussian(crop(data, dims, lo, hi), subDims, spacing, sigma);
      yield { name: logImageName(sigma), region: regionOf(filtered, subDims, bounds.lo.map((l, a) => l - lo[a]) as Vec3) };
    }
  } else if (type === 'Wavelet') {
    // The wavelet of pyradiomics depends on the whole image (periodic extension, flat resize).
    const bands = waveletImages(data, dims, { wavelet: setting.wavelet, level: setting.level, startLevel: setting.start_level });
    for (const [name, band] of bands) yield { name, region: regionOf(band, dims, bounds.lo) };
  } else {
    throw new Error(`imageType ${type} is not implemented; use Original, LoG or Wavelet`);
  }
}

/** The sub-box [lo, hi] (inclusive) of a volume, x fastest. */
function crop(values: ArrayLike<number>, dims: Vec3, lo: Vec3, hi: Vec3): Float64Array {
  const [nx, ny] = dims;
  const out = new Float64Array((hi[0] - lo[0] + 1) * (hi[1] - lo[1] + 1) * (hi[2] - lo[2] + 1));
  let w = 0;
  for (let k = lo[2]; k <= hi[2]; k++)
    for (let j = lo[1]; j <= hi[1]; j++) {
      const row = nx * (j + ny * k);
      for (let i = lo[0]; i <= hi[0]; i++) out[w++] = values[row + i];
    }
  return out;
}

/** Reorders axes so that `outOfPlane` (0 = x, 1 = y, 2 = z) becomes z; in-plane order is irrelevant. */
function toSlices<T extends Float64Array | Uint8Array | Int32Array>(a: T, dims: Vec3, outOfPlane: number): { data: T; dims: Vec3 } {
  if (outOfPlane === 2) return { data: a, dims };
  const order = outOfPlane === 1 ? [0, 2, 1] : [1, 2, 0]; // new axis n takes old axis order[n]
  const nd = order.map((o) => dims[o]) as Vec3;
  const out = new (a.constructor as { new (n: number): T })(a.length);
  const [nx, ny] = dims;
  const idx = [0, 0, 0];
  for (idx[2] = 0; idx[2] < dims[2]; idx[2]++)
    for (idx[1] = 0; idx[1] < dims[1]; idx[1]++)
      for (idx[0] = 0; idx[0] < dims[0]; idx[0]++) {
        const src = idx[0] + nx * (idx[1] + ny * idx[2]);
        out[idx[order[0]] + nd[0] * (idx[order[1]] + nd[1] * idx[order[2]])] = a[src];
      }
  return { data: out, dims: nd };
}

/** All enabled non-shape classes on one cropped region. */
function regionFeatures(region: Region, setting: PyradiomicsSetting, classes: Map<FeatureClassName, string[]>): Map<string, number> {
  const { values, mask } = region;
  const nRoi = mask.reduce((s, v) => s + v, 0);
  const roiValues = new Float64Array(nRoi);
  for (let i = 0, p = 0; i < mask.length; i++) if (mask[i]) roiValues[p++] = values[i];
  const edges = binEdges(roiValues, setting);
  const levels = new Int32Array(values.length);
  const roiLevels = new Int32Array(nRoi);
  let ng = 1;
  for (let i = 0, p = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const l = digitize(values[i], edges);
    levels[i] = l;
    roiLevels[p++] = l;
    if (l > ng) ng = l;
  }
  const out = new Map<string, number>();
  const put = (cls: FeatureClassName, f: Map<string, number> | ((name: string) => number)) => {
    for (const name of classes.get(cls) ?? []) out.set(`${cls}_${name}`, typeof f === 'function' ? f(name) : (f.get(name) as number));
  };
  if (classes.has('firstorder')) {
    const vv = region.spacingMm[0] * region.spacingMm[1] * region.spacingMm[2];
    put('firstorder', firstOrderFeatures(roiValues, roiLevels, vv, setting.voxelArrayShift));
  }
  const textures: FeatureClassName[] = ['glcm', 'glrlm', 'glszm', 'gldm', 'ngtdm'];
  if (!textures.some((c) => classes.has(c))) return out;

  const outOfPlane = setting.force2D ? 2 - setting.force2Ddimension : 2;
  const sl = toSlices(levels, region.dims, outOfPlane);
  const sm = toSlices(mask, region.dims, outOfPlane);
  const sp = [0, 1, 2].map((n) => region.spacingMm[(outOfPlane === 2 ? [0, 1, 2] : outOfPlane === 1 ? [0, 2, 1] : [1, 2, 0])[n]]) as Vec3;
  const vol: RoiVolume = { dims: sl.dims, spacingMm: sp, intensity: new Float64Array(0), morphMask: sm.data, intensityMask: sm.data };
  const disc = { levels: sl.data, nLevels: ng };
  const agg2 = setting.force2D;
  const distance = Math.max(...setting.distances);
  if (classes.has('glcm')) {
    put('glcm', glcmPyradiomics(sl.data, sl.dims, sp, ng, { distances: setting.distances, inPlane: agg2, symmetrical: setting.symmetricalGLCM, weightingNorm: setting.weightingNorm }));
  }
  if (classes.has('glrlm')) {
    if (setting.weightingNorm && setting.weightingNorm !== 'no_weighting') throw new Error(`GLRLM weightingNorm ${setting.weightingNorm} is not implemented; use no_weighting or leave it empty`);
    const suffix = (agg2 ? '_2_5D' : '_3D') + (setting.weightingNorm ? '_comb' : '_avg');
    const f = glrlmFeatures(vol, disc);
    put('glrlm', (n) => f.get(RLM[n] + suffix) as number);
  }
  const suffix = agg2 ? '_2_5D' : '_3D';
  if (classes.has('glszm')) {
    const f = glszmFeatures(vol, disc);
    put('glszm', (n) => f.get(SZM[n] + suffix) as number);
  }
  if (classes.has('gldm')) {
    const f = ngldmFeatures(vol, disc, { distance, alpha: setting.gldm_a });
    put('gldm', (n) => f.get(DM[n] + suffix) as number);
  }
  if (classes.has('ngtdm')) {
    const f = ngtdmFeatures(vol, disc, { distance });
    put('ngtdm', (n) => f.get(NGT[n] + suffix) as number);
  }
  return out;
}
