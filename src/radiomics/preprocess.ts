/**
 * IBSI image processing (reference manual, chapter "Image processing"): interpolation on a grid whose
 * centre is aligned with the original grid's centre, intensity rounding, mask interpolation with a
 * partial-volume threshold, range and outlier re-segmentation, and discretisation (fixed bin size,
 * fixed bin number, and the IVH variants). Pure computation on typed arrays, x fastest.
 */
import type { Discretised, RoiVolume, Vec3 } from './types.js';

/** An image or mask as read from disk: values on an axis-aligned grid, index i + nx*(j + ny*k). */
export interface RawVolume {
  dims: Vec3;
  spacingMm: Vec3;
  data: ArrayLike<number>;
}

export type Interpolator = 'nearest' | 'linear' | 'cubic';

export interface ResamplingSettings {
  /** New spacing per axis in mm; null keeps that axis (IBSI config B: in-plane only). */
  spacingMm: [number | null, number | null, number | null];
  image: Interpolator;
  /** The mask is interpolated as a fraction, then binarised at >= partialVolume. */
  mask: Interpolator;
  partialVolume: number;
}

export type Discretisation =
  | { method: 'none' } // intensities are already grey levels (digital phantom)
  | { method: 'FBS'; binWidth: number } // lower bound: re-segmentation minimum, else ROI minimum
  | { method: 'FBN'; bins: number };

/** IVH discretisation: calibrated discrete data use 1-unit steps over the range; otherwise FBS/FBN. */
export type IvhDiscretisation = { method: 'none' } | { method: 'FBS'; binWidth: number } | { method: 'FBN'; bins: number };

export interface ProcessingSettings {
  /** Round intensities to the nearest integer (on reading and after interpolation): CT. */
  roundIntensities: boolean;
  resampling: ResamplingSettings | null;
  /** Closed intensity range kept in the intensity mask; either bound may be infinite. */
  resegmentRange: [number, number] | null;
  /** Keep mean ± n·SD of the morphological-mask intensities (population SD); combined with the range by intersection. */
  outlierSigma: number | null;
  /** Margin (mm) kept around the ROI when cropping, so neighbourhood features see the same image as uncropped. */
  marginMm: number;
}

// ---------------------------------------------------------------------------------------------
// Interpolation grid

/** One axis of the IBSI interpolation grid: n new points at `start + i*step` in old voxel coordinates. */
export interface AxisGrid {
  n: number;
  start: number;
  step: number;
  spacingMm: number;
}

/** IBSI: n_b = ceil(n_a s_a / s_b); the new grid's centre coincides with the old one's. */
export function alignedAxis(nOld: number, sOld: number, sNew: number | null): AxisGrid {
  if (sNew === null || sNew === sOld) return { n: nOld, start: 0, step: 1, spacingMm: sOld };
  if (!(sNew > 0)) throw new Error(`resampling spacing must be > 0 mm, got ${sNew}`);
  // Rounding guards against 0.977*204/2 landing a hair above an integer through floating error.
  const n = Math.ceil(Math.round(((nOld * sOld) / sNew) * 1e9) / 1e9);
  const step = sNew / sOld;
  return { n, start: 0.5 * (nOld - 1 - step * (n - 1)), step, spacingMm: sNew };
}

/** Cubic B-spline prefilter coefficients along one line (causal/anticausal recursion, mirror boundary). */
function bsplinePrefilterLine(c: Float64Array): void {
  const n = c.length;
  if (n < 2) return;
  const z = Math.sqrt(3) - 2;
  const gain = (1 - z) * (1 - 1 / z);
  for (let i = 0; i < n; i++) c[i] *= gain;
  // Initial causal coefficient for a mirror-symmetric extension (Unser; as scipy's spline_filter).
  const horizon = Math.ceil(Math.log(1e-15) / Math.log(Math.abs(z)));
  if (n > horizon) {
    // Long line: the mirrored tail's contribution is below the tolerance.
    let zn = z;
    let sum = c[0];
    for (let k = 1; k < horizon; k++) {
      sum += zn * c[k];
      zn *= z;
    }
    c[0] = sum;
  } else {
    // Short line: the exact sum over the mirror-periodic extension.
    const z2n = z ** (2 * n - 2);
    let sum = c[0] + z ** (n - 1) * c[n - 1];
    for (let k = 1; k < n - 1; k++) sum += (z ** k + z ** (2 * n - 2 - k)) * c[k];
    c[0] = sum / (1 - z2n);
  }
  for (let k = 1; k < n; k++) c[k] += z * c[k - 1];
  c[n - 1] = (z / (z * z - 1)) * (z * c[n - 2] + c[n - 1]);
  for (let k = n - 2; k >= 0; k--) c[k] = z * (c[k + 1] - c[k]);
}

function cubicBspline(t: number): number {
  const a = Math.abs(t);
  if (a < 1) return 2 / 3 - a * a + (a * a * a) / 2;
  if (a < 2) {
    const b = 2 - a;
    return (b * b * b) / 6;
  }
  return 0;
}

/**
 * Resamples along one axis of a volume: output has `count` points at `grid.start + (first+i)*grid.step`
 * (old voxel coordinates); positions outside the old grid take the nearest boundary value.
 */
function resampleAxis(src: Float64Array, dims: Vec3, axis: 0 | 1 | 2, grid: AxisGrid, first: number, count: number, method: Interpolator): { data: Float64Array; dims: Vec3 } {
  const outDims: Vec3 = [...dims];
  outDims[axis] = count;
  const out = new Float64Array(outDims[0] * outDims[1] * outDims[2]);
  const nOld = dims[axis];
  const stride = axis === 0 ? 1 : axis === 1 ? dims[0] : dims[0] * dims[1];
  const outStride = axis === 0 ? 1 : axis === 1 ? outDims[0] : outDims[0] * outDims[1];
  // Precompute taps per output position: up to 4 (index, weight) pairs.
  const taps = method === 'cubic' ? 4 : method === 'linear' ? 2 : 1;
  const idx = new Int32Array(count * taps);
  const wts = new Float64Array(count * taps);
  const clamp = (i: number) => (i < 0 ? 0 : i >= nOld ? nOld - 1 : i);
  for (let o = 0; o < count; o++) {
    const x = Math.min(Math.max(grid.start + (first + o) * grid.step, 0), nOld - 1);
    if (method === 'nearest') {
      idx[o] = clamp(Math.round(x));
      wts[o] = 1;
    } else if (method === 'linear') {
      const i0 = Math.floor(x);
      const f = x - i0;
      idx[o * 2] = clamp(i0);
      idx[o * 2 + 1] = clamp(i0 + 1);
      wts[o * 2] = 1 - f;
      wts[o * 2 + 1] = f;
    } else {
      const i0 = Math.floor(x) - 1;
      for (let t = 0; t < 4; t++) {
        const i = i0 + t;
        // Mirror (whole-sample symmetric) extension of the coefficients, matching the prefilter.
        let m = i;
        if (nOld === 1) m = 0;
        else {
          const period = 2 * (nOld - 1);
          m = ((m % period) + period) % period;
          if (m >= nOld) m = period - m;
        }
        idx[o * 4 + t] = m;
        wts[o * 4 + t] = cubicBspline(x - i);
      }
    }
  }
  // Lines along `axis`: iterate over the other two axes.
  const [a1, a2] = axis === 0 ? [1, 2] : axis === 1 ? [0, 2] : [0, 1];
  const s1 = a1 === 0 ? 1 : a1 === 1 ? dims[0] : dims[0] * dims[1];
  const s2 = a2 === 0 ? 1 : a2 === 1 ? dims[0] : dims[0] * dims[1];
  const o1 = a1 === 0 ? 1 : a1 === 1 ? outDims[0] : outDims[0] * outDims[1];
  const o2 = a2 === 0 ? 1 : a2 === 1 ? outDims[0] : outDims[0] * outDims[1];
  const line = new Float64Array(nOld);
  for (let q = 0; q < dims[a2]; q++) {
    for (let p = 0; p < dims[a1]; p++) {
      const base = p * s1 + q * s2;
      for (let i = 0; i < nOld; i++) line[i] = src[base + i * stride];
      if (method === 'cubic') bsplinePrefilterLine(line);
      const outBase = p * o1 + q * o2;
      for (let o = 0; o < count; o++) {
        let v = 0;
        for (let t = 0; t < taps; t++) v += wts[o * taps + t] * line[idx[o * taps + t]];
        out[outBase + o * outStride] = v;
      }
    }
  }
  return { data: out, dims: outDims };
}

/** A sub-box of the new grid: first index and count per axis. */
export interface Box {
  first: Vec3;
  count: Vec3;
}

/**
 * Interpolates a volume onto the sub-box `box` of the aligned grid `grids`, one axis at a time
 * (separable). `transform` is applied to each source value first (rounding, binarising), only over
 * the part of the source the box needs.
 */
export function resampleVolume(vol: RawVolume, grids: [AxisGrid, AxisGrid, AxisGrid], box: Box, method: Interpolator, transform?: (v: number) => number): Float64Array {
  // Crop the source to the support the box needs first, so big images stay cheap.
  const support = 3;
  const lo: Vec3 = [0, 0, 0];
  const hi: Vec3 = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const g = grids[a];
    const x0 = g.start + box.first[a] * g.step;
    const x1 = g.start + (box.first[a] + box.count[a] - 1) * g.step;
    // Cubic needs the line around the box for the prefilter's recursion: its influence decays as
    // 0.27^d, so 40 voxels make the cropped line's boundary irrelevant (< 1e-22).
    const pad = method === 'cubic' ? 40 : support;
    lo[a] = Math.max(0, Math.floor(x0) - pad);
    hi[a] = Math.min(vol.dims[a] - 1, Math.ceil(x1) + pad);
  }
  const cropDims: Vec3 = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
  let data: Float64Array = new Float64Array(cropDims[0] * cropDims[1] * cropDims[2]);
  const [nx, ny] = vol.dims;
  let w = 0;
  for (let k = lo[2]; k <= hi[2]; k++)
    for (let j = lo[1]; j <= hi[1]; j++) {
      const row = nx * (j + ny * k);
      if (transform) for (let i = lo[0]; i <= hi[0]; i++) data[w++] = transform(vol.data[row + i]);
      else for (let i = lo[0]; i <= hi[0]; i++) data[w++] = vol.data[row + i];
    }
  let dims = cropDims;
  for (const a of [0, 1, 2] as const) {
    const g = grids[a];
    // Shift the axis grid into the cropped source's coordinates.
    const shifted: AxisGrid = { ...g, start: g.start - lo[a] };
    ({ data, dims } = resampleAxis(data, dims, a, shifted, box.first[a], box.count[a], method));
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// The processing chain

export interface ProcessedRoi extends RoiVolume {
  /** Where the (cropped) volume sits: first voxel of the box in the full interpolated grid. */
  box: Box;
  /** Full interpolated grid size (before cropping). */
  gridDims: Vec3;
}

/** Bounding box of nonzero voxels; throws when the mask is empty. */
function boundingBox(mask: ArrayLike<number>, dims: Vec3): { lo: Vec3; hi: Vec3 } {
  const [nx, ny, nz] = dims;
  const lo: Vec3 = [nx, ny, nz];
  const hi: Vec3 = [-1, -1, -1];
  let p = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++) {
        if (!mask[p]) continue;
        if (i < lo[0]) lo[0] = i;
        if (i > hi[0]) hi[0] = i;
        if (j < lo[1]) lo[1] = j;
        if (j > hi[1]) hi[1] = j;
        if (k < lo[2]) lo[2] = k;
        if (k > hi[2]) hi[2] = k;
      }
  if (hi[0] < 0) throw new Error('the ROI mask is empty: no voxel is set; check the label value and that mask and image match');
  return { lo, hi };
}

/**
 * Runs the IBSI processing chain: (rounding) → interpolation of image and mask on the aligned grid →
 * (rounding) → partial-volume threshold (morphological mask) → re-segmentation (intensity mask).
 * The result is cropped to the ROI's bounding box plus `marginMm`, which changes no feature.
 */
export function processImage(image: RawVolume, mask: RawVolume, settings: ProcessingSettings): ProcessedRoi {
  if (image.dims.some((d, a) => d !== mask.dims[a])) throw new Error(`image ${image.dims.join('x')} and mask ${mask.dims.join('x')} differ in size; they must share one grid`);
  const n = image.dims[0] * image.dims[1] * image.dims[2];
  if (image.data.length !== n || mask.data.length !== n) throw new Error(`image/mask data length does not match ${image.dims.join('x')}`);
  const rs = settings.resampling;
  const grids = [0, 1, 2].map((a) => alignedAxis(image.dims[a], image.spacingMm[a], rs ? rs.spacingMm[a] : null)) as [AxisGrid, AxisGrid, AxisGrid];
  const gridDims: Vec3 = [grids[0].n, grids[1].n, grids[2].n];
  const spacingMm: Vec3 = [grids[0].spacingMm, grids[1].spacingMm, grids[2].spacingMm];

  // Box of the new grid that covers the old ROI bounding box (±1 old voxel for interpolation) plus the margin.
  const bb = boundingBox(mask.data, mask.dims);
  const first: Vec3 = [0, 0, 0];
  const count: Vec3 = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const g = grids[a];
    const marginVox = Math.ceil(settings.marginMm / g.spacingMm) + 1;
    const lo = Math.floor((bb.lo[a] - 1 - g.start) / g.step) - marginVox;
    const hi = Math.ceil((bb.hi[a] + 1 - g.start) / g.step) + marginVox;
    first[a] = Math.max(0, lo);
    count[a] = Math.min(g.n - 1, hi) - first[a] + 1;
  }
  const box: Box = { first, count };

  const round = settings.roundIntensities ? Math.round : undefined;
  const intensity = resampleVolume(image, grids, box, rs ? rs.image : 'nearest', round);
  if (round && rs) for (let i = 0; i < intensity.length; i++) intensity[i] = round(intensity[i]);
  const fraction = resampleVolume(mask, grids, box, rs ? rs.mask : 'nearest', (v) => (v ? 1 : 0));
  const threshold = rs ? rs.partialVolume : 0.5;
  const morphMask = new Uint8Array(fraction.length);
  // Tolerance: a fraction computed as 0.4999999999 from exact halves must count as 0.5.
  for (let i = 0; i < fraction.length; i++) morphMask[i] = fraction[i] >= threshold - 1e-9 ? 1 : 0;
  const intensityMask = resegment(intensity, morphMask, settings.resegmentRange, settings.outlierSigma);
  return { dims: count, spacingMm, intensity, morphMask, intensityMask, box, gridDims };
}

/** Intensity mask: the morphological mask restricted to the range and/or to mean ± nσ (intersection). */
export function resegment(intensity: Float64Array, morphMask: Uint8Array, range: [number, number] | null, sigma: number | null): Uint8Array {
  const out = morphMask.slice();
  if (sigma !== null) {
    let n = 0;
    let sum = 0;
    for (let i = 0; i < out.length; i++) if (morphMask[i]) (n++, (sum += intensity[i]));
    const mean = sum / n;
    let ss = 0;
    for (let i = 0; i < out.length; i++) if (morphMask[i]) ss += (intensity[i] - mean) ** 2;
    const sd = Math.sqrt(ss / n);
    const lo = mean - sigma * sd;
    const hi = mean + sigma * sd;
    for (let i = 0; i < out.length; i++) if (out[i] && (intensity[i] < lo || intensity[i] > hi)) out[i] = 0;
  }
  if (range) {
    const [lo, hi] = range;
    for (let i = 0; i < out.length; i++) if (out[i] && (intensity[i] < lo || intensity[i] > hi)) out[i] = 0;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Discretisation

function maskedMinMax(values: Float64Array, mask: Uint8Array): { min: number; max: number; n: number } {
  let min = Infinity;
  let max = -Infinity;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    if (!mask[i]) continue;
    n++;
    const v = values[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (n === 0) throw new Error('the intensity mask is empty after re-segmentation: no voxel lies in the re-segmentation range');
  return { min, max, n };
}

/**
 * Discretises the intensity-mask voxels. FBS: ⌊(x − min)/w⌋ + 1 with min = the lower re-segmentation
 * bound when finite (IBSI), else the ROI minimum. FBN: ⌊N (x − min)/(max − min)⌋ + 1, the maximum in bin N.
 * 'none': the intensities are the grey levels (rounded; N_g = the highest level).
 */
export function discretise(vol: RoiVolume, method: Discretisation, resegmentRange: [number, number] | null): Discretised {
  const { intensity, intensityMask } = vol;
  const { min, max } = maskedMinMax(intensity, intensityMask);
  const levels = new Int32Array(intensity.length);
  let nLevels = 1;
  if (method.method === 'none') {
    if (min < 1) throw new Error(`discretisation 'none' needs grey levels >= 1, the ROI has ${min}; choose FBS or FBN`);
    for (let i = 0; i < levels.length; i++) if (intensityMask[i]) levels[i] = Math.round(intensity[i]);
    nLevels = Math.round(max);
  } else if (method.method === 'FBS') {
    const lower = resegmentRange && Number.isFinite(resegmentRange[0]) ? resegmentRange[0] : min;
    const w = method.binWidth;
    for (let i = 0; i < levels.length; i++) {
      if (!intensityMask[i]) continue;
      const l = Math.floor((intensity[i] - lower) / w) + 1;
      levels[i] = l;
      if (l > nLevels) nLevels = l;
    }
  } else {
    const nb = method.bins;
    const span = max - min;
    for (let i = 0; i < levels.length; i++) {
      if (!intensityMask[i]) continue;
      levels[i] = span === 0 ? 1 : Math.min(nb, Math.floor((nb * (intensity[i] - min)) / span) + 1);
    }
    nLevels = nb;
  }
  return { levels, nLevels };
}

/** Values the IVH works on: per-voxel value (an intensity or a bin centre / bin number) and the range G. */
export interface IvhInput {
  /** Value per intensity-mask voxel (compact, masked voxels only). */
  values: Float64Array;
  /** The ordered set of values the IVH is evaluated at (G), including values absent from the ROI. */
  grid: Float64Array;
}

/**
 * IBSI IVH discretisation. 'none' (discrete calibrated data, e.g. CT in HU): unit steps over the
 * re-segmentation range, or the ROI's [min, max] without one. FBS (continuous calibrated): bins of
 * width w from the range's lower bound, each voxel represented by its bin centre. FBN (arbitrary
 * units): bin numbers 1..N.
 */
export function ivhDiscretise(vol: RoiVolume, method: IvhDiscretisation, resegmentRange: [number, number] | null): IvhInput {
  const { intensity, intensityMask } = vol;
  const { min, max, n } = maskedMinMax(intensity, intensityMask);
  const values = new Float64Array(n);
  let lo = resegmentRange && Number.isFinite(resegmentRange[0]) ? resegmentRange[0] : min;
  let hi = resegmentRange && Number.isFinite(resegmentRange[1]) ? resegmentRange[1] : max;
  let p = 0;
  let grid: Float64Array;
  if (method.method === 'none') {
    for (let i = 0; i < intensity.length; i++) if (intensityMask[i]) values[p++] = Math.round(intensity[i]);
    lo = Math.round(lo);
    hi = Math.round(hi);
    grid = Float64Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  } else if (method.method === 'FBS') {
    const w = method.binWidth;
    for (let i = 0; i < intensity.length; i++) if (intensityMask[i]) values[p++] = lo + (Math.floor((intensity[i] - lo) / w) + 0.5) * w;
    const nBins = Math.floor((hi - lo) / w) + 1;
    grid = Float64Array.from({ length: nBins }, (_, i) => lo + (i + 0.5) * w);
  } else {
    const nb = method.bins;
    const span = max - min;
    for (let i = 0; i < intensity.length; i++) if (intensityMask[i]) values[p++] = span === 0 ? 1 : Math.min(nb, Math.floor((nb * (intensity[i] - min)) / span) + 1);
    grid = Float64Array.from({ length: nb }, (_, i) => i + 1);
  }
  return { values, grid };
}
