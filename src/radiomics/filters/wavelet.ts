/**
 * pyradiomics' Wavelet image type (imageoperations._swt3): a one-level stationary (undecimated)
 * wavelet transform along x, y and z (PyWavelets swtn with axes (2, 1, 0), periodic extension),
 * giving the 8 sub-bands named by their filter along x, y, z: 'LLH' = low-pass x, low-pass y,
 * high-pass z. start_level > 0 first replaces the image by its LLL approximation that many times.
 *
 * Reproduced quirks: an odd-sized image is enlarged with numpy's flat `resize` (zeros appended to the
 * flattened array, then reshaped), and each sub-band is cut back with a flat resize; this shifts rows
 * as pyradiomics does. For even sizes both are identities.
 */
import type { Vec3 } from '../types.js';

/** Decomposition filters (PyWavelets dec_lo / dec_hi). */
const WAVELETS: Record<string, { lo: number[]; hi: number[] }> = {
  haar: { lo: [Math.SQRT1_2, Math.SQRT1_2], hi: [-Math.SQRT1_2, Math.SQRT1_2] },
  coif1: {
    lo: [-0.015655728135791993, -0.07273261951252645, 0.3848648468648578, 0.8525720202116004, 0.33789766245748, -0.07273261951252645],
    hi: [0.07273261951252645, 0.33789766245748, -0.8525720202116004, 0.3848648468648578, 0.07273261951252645, -0.015655728135791993],
  },
};

export const WAVELET_NAMES = Object.keys(WAVELETS);

/**
 * PyWavelets' periodized convolution with step 1 (swt level 1): out[o] = Σ_j f[j]·x[(o + F/2 − j) mod N].
 */
function swtAxis(src: Float64Array, dims: Vec3, axis: 0 | 1 | 2, filter: number[]): Float64Array {
  const [nx, ny] = dims;
  const n = dims[axis];
  const stride = axis === 0 ? 1 : axis === 1 ? nx : nx * ny;
  const half = filter.length >> 1;
  const out = new Float64Array(src.length);
  const lines = src.length / n;
  const line = new Float64Array(n);
  for (let l = 0; l < lines; l++) {
    const base = axis === 0 ? l * nx : axis === 1 ? (l % nx) + Math.floor(l / nx) * nx * ny : l;
    for (let i = 0; i < n; i++) line[i] = src[base + i * stride];
    for (let o = 0; o < n; o++) {
      let v = 0;
      for (let j = 0; j < filter.length; j++) v += filter[j] * line[((((o + half - j) % n) + n) % n)];
      out[base + o * stride] = v;
    }
  }
  return out;
}

/** numpy resize of a C-ordered array to a new total size: truncate, or append zeros (ndarray.resize). */
function flatResize(src: Float64Array, size: number): Float64Array {
  const out = new Float64Array(size);
  out.set(src.subarray(0, Math.min(size, src.length)));
  return out;
}

/** The 8 sub-bands of one swtn level, keyed by 'L'/'H' along x, y, z. */
function swt3Level(data: Float64Array, dims: Vec3, w: { lo: number[]; hi: number[] }): Map<string, Float64Array> {
  let bands = new Map<string, Float64Array>([['', data]]);
  for (const axis of [0, 1, 2] as const) {
    const next = new Map<string, Float64Array>();
    for (const [key, arr] of bands) {
      next.set(`${key}L`, swtAxis(arr, dims, axis, w.lo));
      next.set(`${key}H`, swtAxis(arr, dims, axis, w.hi));
    }
    bands = next;
  }
  return bands;
}

/**
 * pyradiomics getWaveletImage: image name ('wavelet-LLH', …; levels above the first are named
 * 'wavelet<level>-XXX') → filtered image on the input grid. The approximation of the last level is
 * 'wavelet-LLL' (one level) or 'wavelet<level>-LLL'.
 */
export function waveletImages(data: ArrayLike<number>, dims: Vec3, opts: { wavelet: string; level: number; startLevel: number }): Map<string, Float64Array> {
  const w = WAVELETS[opts.wavelet];
  if (!w) throw new Error(`wavelet "${opts.wavelet}" is not implemented; use one of ${WAVELET_NAMES.join(', ')}`);
  const n = dims[0] * dims[1] * dims[2];
  const adjusted = dims.map((d) => (d % 2 ? d + 1 : d)) as Vec3;
  let cur = flatResize(Float64Array.from(data), adjusted[0] * adjusted[1] * adjusted[2]);
  for (let i = 0; i < opts.startLevel; i++) cur = swt3Level(cur, adjusted, w).get('LLL') as Float64Array;
  const out = new Map<string, Float64Array>();
  for (let lvl = 0; lvl < opts.level; lvl++) {
    const bands = swt3Level(cur, adjusted, w);
    cur = bands.get('LLL') as Float64Array;
    const prefix = lvl === 0 ? 'wavelet-' : `wavelet${lvl + 1}-`;
    for (const [key, arr] of bands) if (key !== 'LLL') out.set(prefix + key, flatResize(arr, n));
  }
  out.set(opts.level === 1 ? 'wavelet-LLL' : `wavelet${opts.level}-LLL`, flatResize(cur, n));
  return out;
}
