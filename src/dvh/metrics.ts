/**
 * DVH metrics with the contract's column names (those of the original rtpipeline). Pure.
 *
 * Definitions (cumulative DVH V(D) = volume receiving at least D, 0.01 Gy bins):
 * - Dx (x %) and Dycc: the dose D with V(D) = x % of the volume (resp. y cm³), linearly interpolated
 *   within the bin where the curve crosses that volume, and kept within [Dmin, Dmax] (so a uniform dose
 *   gives every Dx equal to it). Dycc is null when the ROI is smaller than y cm³.
 * - V{x}Gy: V(x Gy), exact at bin edges (x Gy is an edge); V95%Rx / V100%Rx interpolate within the bin.
 * - DmeanGy, DminGy, DmaxGy: exact over the samples when the DVH carries them (dvh.ts does), else
 *   from the bins (bin centres for the mean, the edges of the first and last non-empty bins).
 * - HI = (D2 - D98) / D50 (ICRU Report 83 homogeneity index); null when D50 is 0.
 * - IntegralDose_Gycm3 = Dmean x Volume.
 */
import type { CumulativeDvh } from './dvh.js';

export type MetricValue = number | null;
export type DvhMetrics = Record<string, MetricValue>;

export const VX_DOSES_GY: readonly number[] = Array.from({ length: 60 }, (_, i) => i + 1);

/** The metric columns, in output order (after the identifying columns). */
export function dvhMetricColumns(withPrescription: boolean): string[] {
  const cols = ['Volume (cm³)', 'DmeanGy', 'DmaxGy', 'DminGy', 'D95Gy', 'D98Gy', 'D2Gy', 'D50Gy', 'HI', 'D1ccGy', 'D0.1ccGy', 'IntegralDose_Gycm3'];
  for (const x of VX_DOSES_GY) cols.push(`V${x}Gy (cm³)`, `V${x}Gy (%)`);
  if (withPrescription) cols.push('V95%Rx (cm³)', 'V95%Rx (%)', 'V100%Rx (cm³)', 'V100%Rx (%)');
  return cols;
}

export interface MetricsOptions {
  /** Total prescribed dose (Gy): adds V95%Rx and V100%Rx. */
  prescriptionGy?: number;
}

export function dvhMetrics(dvh: CumulativeDvh, opts: MetricsOptions = {}): DvhMetrics {
  const curve = new DvhCurve(dvh);
  const volume = curve.totalCm3;
  const m: DvhMetrics = {};
  m['Volume (cm³)'] = dvh.volumeCm3;
  const empty = volume <= 0;
  const dose = (fraction: number) => (empty ? null : curve.doseAtVolume(fraction * volume));
  m.DmeanGy = empty ? null : curve.mean;
  m.DmaxGy = empty ? null : curve.max;
  m.DminGy = empty ? null : curve.min;
  m.D95Gy = dose(0.95);
  m.D98Gy = dose(0.98);
  m.D2Gy = dose(0.02);
  m.D50Gy = dose(0.5);
  m.HI = m.D50Gy ? (m.D2Gy! - m.D98Gy!) / m.D50Gy : null;
  m.D1ccGy = !empty && volume >= 1 ? curve.doseAtVolume(1) : null;
  m['D0.1ccGy'] = !empty && volume >= 0.1 ? curve.doseAtVolume(0.1) : null;
  m.IntegralDose_Gycm3 = empty ? null : curve.mean * dvh.volumeCm3;
  const percent = (cm3: number) => (empty ? null : (100 * cm3) / volume);
  for (const x of VX_DOSES_GY) {
    const v = curve.volumeAtDose(x);
    m[`V${x}Gy (cm³)`] = v;
    m[`V${x}Gy (%)`] = percent(v);
  }
  const rx = opts.prescriptionGy;
  if (rx !== undefined) {
    if (!(rx > 0)) throw new RangeError(`prescription must be a positive dose in Gy, got ${rx}`);
    for (const [label, f] of [['V95%Rx', 0.95], ['V100%Rx', 1]] as const) {
      const v = curve.volumeAtDose(f * rx);
      m[`${label} (cm³)`] = v;
      m[`${label} (%)`] = percent(v);
    }
  }
  return m;
}

/** Look-ups on a cumulative DVH, treating it as linear within each bin. */
class DvhCurve {
  readonly totalCm3: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  private readonly c: Float64Array;
  private readonly w: number;

  constructor(dvh: CumulativeDvh) {
    this.c = dvh.cumulativeCm3;
    this.w = dvh.binWidthGy;
    this.totalCm3 = this.c.length > 0 ? this.c[0] : 0;
    const fromBins = this.binStatistics();
    this.mean = Number.isFinite(dvh.meanGy) ? dvh.meanGy : fromBins.mean;
    this.min = Number.isFinite(dvh.minGy) ? dvh.minGy : fromBins.min;
    this.max = Number.isFinite(dvh.maxGy) ? dvh.maxGy : fromBins.max;
  }

  /** V(D): volume (cm³) receiving at least `gy`. */
  volumeAtDose(gy: number): number {
    const x = gy / this.w;
    const b = Math.floor(x + 1e-9);
    if (b < 0) return this.totalCm3;
    if (b >= this.c.length - 1) return 0;
    const f = x - b;
    if (f < 1e-9) return this.c[b];
    return this.c[b] + f * (this.c[b + 1] - this.c[b]);
  }

  /** The dose D with V(D) = v, within [min, max]. */
  doseAtVolume(v: number): number {
    const c = this.c;
    // Last bin b with c[b] >= v: the curve falls through v between b and b + 1.
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (c[mid] >= v) lo = mid;
      else hi = mid - 1;
    }
    const drop = c[lo] - (lo + 1 < c.length ? c[lo + 1] : 0);
    const f = drop > 0 ? (c[lo] - v) / drop : 0;
    const d = (lo + f) * this.w;
    return d < this.min ? this.min : d > this.max ? this.max : d;
  }

  private binStatistics(): { mean: number; min: number; max: number } {
    const c = this.c;
    let weighted = 0;
    let first = -1;
    let last = -1;
    for (let b = 0; b + 1 < c.length; b++) {
      const inBin = c[b] - c[b + 1];
      if (inBin <= 0) continue;
      weighted += inBin * (b + 0.5) * this.w;
      if (first < 0) first = b;
      last = b;
    }
    return { mean: this.totalCm3 > 0 ? weighted / this.totalCm3 : 0, min: (first + 1) * this.w, max: (last + 1) * this.w };
  }
}
