/**
 * pyradiomics' image processing (radiomics/imageoperations.py), which differs from IBSI's:
 * - normalisation over the whole image: (x − mean)/SD (SimpleITK Normalize, unbiased SD), outliers
 *   clipped at ± removeOutliers SD, times normalizeScale;
 * - resampling on a grid aligned to the image *corner* (origin index ½(s_new − s)/s), cropped to the
 *   ROI bounding box ± padDistance new voxels, image interpolated with the chosen SimpleITK
 *   interpolator and cast back to its pixel type (integers truncated), the mask by nearest neighbour;
 * - re-segmentation by one mode only (absolute, relative to the ROI maximum, or mean ± n·SD);
 * - fixed bin width with edges at multiples of the width counted from 0 (getBinEdges), or fixed bin
 *   count with numpy.histogram edges (the top edge + 1), digitised as numpy.digitize does.
 * Pure computation on typed arrays, x fastest.
 */
import type { InterpolatorName, PyradiomicsSetting } from './params.js';
import { type AxisGrid, type Interpolator, type RawVolume, resampleVolume } from './preprocess.js';
import type { Vec3 } from './types.js';
import { maskBox, type MaskBox } from './morphology.js';

/** A volume on a grid, x fastest; `originIndex` places voxel 0 in the source image's continuous index. */
export interface PyVolume {
  dims: Vec3;
  spacingMm: Vec3;
  data: Float64Array;
}

/** The mask's inclusive voxel bounds and count, or null when empty (morphology's maskBox). */
export function maskBounds(mask: ArrayLike<number>, dims: Vec3): MaskBox | null {
  return maskBox(mask, dims) ?? null;
}

/** SimpleITK Normalize (unbiased SD over the whole image), optional clipping, then scale. */
export function normalizeImage(data: ArrayLike<number>, scale: number, outliers: number | null): Float64Array {
  const n = data.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += data[i];
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (data[i] - mean) ** 2;
  const sd = Math.sqrt(ss / (n - 1));
  if (!(sd > 0)) throw new Error('normalize: the image is constant (SD 0); disable `normalize` for this image');
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v = (data[i] - mean) / sd;
    if (outliers !== null) v = Math.max(-outliers, Math.min(outliers, v));
    out[i] = v * scale;
  }
  return out;
}

/** Our separable interpolators standing in for SimpleITK's; others are refused with the reason. */
function interpolatorOf(name: InterpolatorName): Interpolator {
  if (name === 'sitkNearestNeighbor') return 'nearest';
  if (name === 'sitkLinear') return 'linear';
  if (name === 'sitkBSpline') return 'cubic';
  throw new Error(`interpolator ${name} is not implemented; use sitkBSpline, sitkLinear or sitkNearestNeighbor`);
}

export interface Resampled {
  image: PyVolume;
  mask: Uint8Array;
  /** Continuous index (old grid) of the new voxel 0, to place the new grid in patient space. */
  originIndex: Vec3;
}

/**
 * pyradiomics resampleImage: new spacing per axis (0 keeps it; an axis the ROI spans with one voxel
 * is not resampled), grid origin index ½(s_new − s)/s, cropped to the ROI box ± padDistance.
 * Returns null when no axis changes (pyradiomics returns the input unchanged then).
 */
export function resamplePyradiomics(image: RawVolume, mask: Uint8Array, setting: PyradiomicsSetting, integerPixels: boolean): Resampled | null {
  const spacingReq = setting.resampledPixelSpacing;
  if (!spacingReq) return null;
  const bb = maskBounds(mask, image.dims);
  if (!bb) throw new Error('resampling: the ROI mask is empty; check the label value');
  const sOld = image.spacingMm;
  const sNew = spacingReq.map((s, a) => (s === 0 || bb.hi[a] === bb.lo[a] ? sOld[a] : s)) as Vec3;
  if (sNew.every((s, a) => Math.abs(sOld[a] - s) <= 1e-5 + 1e-8 * Math.abs(s))) return null;
  const grids: AxisGrid[] = [];
  const first: Vec3 = [0, 0, 0];
  const count: Vec3 = [0, 0, 0];
  const originIndex: Vec3 = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const ratio = sOld[a] / sNew[a];
    const size = bb.hi[a] - bb.lo[a] + 1;
    let lower = Math.floor((bb.lo[a] - 0.5) * ratio - setting.padDistance);
    let upper = Math.ceil((bb.lo[a] + size - 0.5) * ratio + setting.padDistance);
    const maxUpper = Math.ceil(image.dims[a] * ratio) - 1;
    if (lower < 0) lower = 0;
    if (upper > maxUpper) upper = maxUpper;
    const start = (0.5 * (sNew[a] - sOld[a])) / sOld[a] + lower / ratio;
    grids.push({ n: upper - lower + 1, start, step: 1 / ratio, spacingMm: sNew[a] });
    count[a] = upper - lower + 1;
    originIndex[a] = start;
  }
  const g = grids as [AxisGrid, AxisGrid, AxisGrid];
  const box = { first, count };
  const data = resampleVolume(image, g, box, interpolatorOf(setting.interpolator));
  // ResampleImageFilter casts to the input pixel type: integers are truncated (static_cast).
  if (integerPixels) for (let i = 0; i < data.length; i++) data[i] = Math.trunc(data[i]);
  const maskData = resampleVolume({ dims: image.dims, spacingMm: image.spacingMm, data: mask }, g, box, 'nearest');
  const outMask = new Uint8Array(maskData.length);
  for (let i = 0; i < maskData.length; i++) outMask[i] = maskData[i] >= 0.5 ? 1 : 0;
  return { image: { dims: count, spacingMm: sNew, data }, mask: outMask, originIndex };
}

/** pyradiomics resegmentMask: absolute bounds, fractions of the ROI maximum, or mean + n·SD (population). */
export function resegmentPyradiomics(data: ArrayLike<number>, mask: Uint8Array, range: number[], mode: PyradiomicsSetting['resegmentMode']): Uint8Array {
  let thresholds = range.slice();
  if (mode !== 'absolute') {
    let n = 0, sum = 0, max = -Infinity;
    for (let i = 0; i < mask.length; i++)
      if (mask[i]) {
        n++;
        sum += data[i];
        if (data[i] > max) max = data[i];
      }
    if (mode === 'relative') thresholds = range.map((r) => r * max);
    else {
      const mean = sum / n;
      let ss = 0;
      for (let i = 0; i < mask.length; i++) if (mask[i]) ss += (data[i] - mean) ** 2;
      const sd = Math.sqrt(ss / n);
      thresholds = range.map((r) => mean + r * sd);
    }
  }
  const out = new Uint8Array(mask.length);
  let kept = 0;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i] || data[i] < thresholds[0]) continue;
    if (thresholds.length > 1 && data[i] > thresholds[1]) continue;
    out[i] = 1;
    kept++;
  }
  if (!kept) throw new Error(`re-segmentation (${mode} ${JSON.stringify(range)}) left no voxel in the ROI; widen resegmentRange`);
  return out;
}

/** numpy.arange(start, stop, step) as pyradiomics' getBinEdges builds it (start + i·step). */
function arange(start: number, stop: number, step: number): number[] {
  const n = Math.max(0, Math.ceil((stop - start) / step));
  return Array.from({ length: n }, (_, i) => start + i * step);
}

/** Bin edges of pyradiomics getBinEdges for the ROI values. */
export function binEdges(values: Float64Array, setting: Pick<PyradiomicsSetting, 'binWidth' | 'binCount'>): number[] {
  let min = Infinity, max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (setting.binCount) {
    const nb = setting.binCount;
    // numpy.histogram: linspace(min, max, nb + 1); a flat ROI gets the range [min − 0.5, max + 0.5].
    const [lo, hi] = min === max ? [min - 0.5, max + 0.5] : [min, max];
    const edges = Array.from({ length: nb + 1 }, (_, i) => lo + ((hi - lo) * i) / nb);
    edges[nb] = hi;
    edges[nb] += 1;
    return edges;
  }
  const w = setting.binWidth;
  const pyMod = ((min % w) + w) % w; // Python's % takes the divisor's sign
  const low = min - pyMod;
  const edges = arange(low, max + 2 * w, w);
  return edges.length === 1 ? [edges[0] - 0.5, edges[0] + 0.5] : edges;
}

/** numpy.digitize(x, edges) for ascending edges: the i with edges[i−1] <= x < edges[i]. */
export function digitize(x: number, edges: number[]): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (edges[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
