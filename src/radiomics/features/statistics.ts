/**
 * IBSI intensity-based statistics (family UHIW) over the intensity-mask voxels: population moments,
 * excess kurtosis, linear-interpolation percentiles (numpy's default, as the reference teams used).
 */
import type { Features, RoiVolume } from '../types.js';

/** The intensity-mask voxel values, compacted. */
export function maskedValues(values: ArrayLike<number>, mask: Uint8Array): Float64Array {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) n++;
  const out = new Float64Array(n);
  let p = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) out[p++] = values[i];
  return out;
}

/** Percentile q (0..100) of ascending `sorted`, linear interpolation between order statistics. */
export function percentile(sorted: Float64Array, q: number): number {
  const n = sorted.length;
  if (n === 0) throw new Error('percentile of an empty set');
  const pos = ((n - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

/** Moment-based and order-based statistics shared by the statistics and intensity-histogram families. */
export function distributionFeatures(values: Float64Array, prefix: 'stat' | 'ih'): Features {
  const n = values.length;
  if (n === 0) throw new Error(`${prefix} features need at least one voxel in the intensity mask`);
  const sorted = values.slice().sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i];
  const mean = sum / n;
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  let mad = 0;
  for (let i = 0; i < n; i++) {
    const d = values[i] - mean;
    const d2 = d * d;
    m2 += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
    mad += Math.abs(d);
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  const median = percentile(sorted, 50);
  const p10 = percentile(sorted, 10);
  const p90 = percentile(sorted, 90);
  const p25 = percentile(sorted, 25);
  const p75 = percentile(sorted, 75);
  let medad = 0;
  for (let i = 0; i < n; i++) medad += Math.abs(values[i] - median);
  // Robust MAD: voxels in the closed interval [P10, P90], deviations from their own mean.
  let rn = 0;
  let rsum = 0;
  for (let i = 0; i < n; i++) if (values[i] >= p10 && values[i] <= p90) (rn++, (rsum += values[i]));
  const rmean = rsum / rn;
  let rmad = 0;
  for (let i = 0; i < n; i++) if (values[i] >= p10 && values[i] <= p90) rmad += Math.abs(values[i] - rmean);
  const sd = Math.sqrt(m2);
  const f: Features = new Map();
  const set = (name: string, v: number) => f.set(`${prefix}_${name}`, v);
  set('mean', mean);
  set('var', m2);
  // A constant ROI has no defined shape moments; IBSI sets them to 0.
  set('skew', m2 === 0 ? 0 : m3 / m2 ** 1.5);
  set('kurt', m2 === 0 ? 0 : m4 / (m2 * m2) - 3);
  set('median', median);
  set('min', sorted[0]);
  set('p10', p10);
  set('p90', p90);
  set('max', sorted[n - 1]);
  set('iqr', p75 - p25);
  set('range', sorted[n - 1] - sorted[0]);
  set('mad', mad / n);
  set('rmad', rmad / rn);
  set('medad', medad / n);
  set('cov', sd / mean);
  set('qcod', (p75 - p25) / (p75 + p25));
  return f;
}

/** Intensity-based statistics (stat_*) of the processed intensities in the intensity mask. */
export function statisticsFeatures(vol: RoiVolume): Features {
  const values = maskedValues(vol.intensity, vol.intensityMask);
  const f = distributionFeatures(values, 'stat');
  let energy = 0;
  for (let i = 0; i < values.length; i++) energy += values[i] * values[i];
  f.set('stat_energy', energy);
  f.set('stat_rms', Math.sqrt(energy / values.length));
  return f;
}
