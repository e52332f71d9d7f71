/**
 * Intraclass correlation coefficients from the two-way ANOVA of a subjects x perturbations matrix,
 * with (1 - alpha) confidence intervals from the F distribution. Pure computation.
 *
 * Forms (Shrout & Fleiss 1979; McGraw & Wong 1996 names in brackets), n subjects, k columns:
 *   ICC1 = ICC(1,1) [ICC(1)]   one-way random, absolute agreement: (MSR - MSW)/(MSR + (k-1)MSW)
 *   ICC2 = ICC(2,1) [ICC(A,1)] two-way random, absolute agreement:
 *          (MSR - MSE)/(MSR + (k-1)MSE + k(MSC - MSE)/n)
 *   ICC3 = ICC(3,1) [ICC(C,1)] two-way mixed, consistency: (MSR - MSE)/(MSR + (k-1)MSE)
 * Intervals: ICC1 and ICC3 from F = MSR/MSW resp. MSR/MSE (Shrout & Fleiss); ICC2 from the
 * Satterthwaite approximation of McGraw & Wong (1996), as R psych / pingouin do.
 */
import { fQuantile } from './distributions.js';

export type IccType = 'ICC1' | 'ICC2' | 'ICC3';
/** Complete ratings, row-major: values[i * nColumns + j] is subject i under perturbation (column) j. */
export interface RatingMatrix {
  nSubjects: number;
  nColumns: number;
  values: Float64Array;
}

/** Mean squares of the two-way (subjects x columns) ANOVA without replication. */
export interface AnovaMeanSquares {
  n: number;
  k: number;
  /** Between subjects (rows), df n-1. */
  msR: number;
  /** Between columns (perturbations/raters), df k-1. */
  msC: number;
  /** Residual, df (n-1)(k-1). */
  msE: number;
  /** Within subjects (one-way), df n(k-1). */
  msW: number;
  /** Total sum of squares about the grand mean. */
  ssTotal: number;
  grandMean: number;
}

export interface IccEstimate {
  defined: true;
  type: IccType;
  icc: number;
  /** Confidence bounds; null when the interval itself is undefined (e.g. a degenerate Satterthwaite df). */
  ciLow: number | null;
  ciHigh: number | null;
  /** The F statistic of the test ICC = 0 and its degrees of freedom. */
  f: number;
  df1: number;
  df2: number;
}

export interface IccUndefined {
  defined: false;
  type: IccType;
  reason: string;
}

export type IccResult = IccEstimate | IccUndefined;

export function twoWayAnova(m: RatingMatrix): AnovaMeanSquares {
  const { nSubjects: n, nColumns: k, values } = m;
  if (!(n >= 2 && k >= 2)) {
    throw new RangeError(`ICC needs at least 2 subjects and 2 perturbations; got ${n} x ${k}`);
  }
  if (values.length !== n * k) {
    throw new RangeError(`rating matrix has ${values.length} values, expected ${n} x ${k} = ${n * k}`);
  }
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) throw new RangeError(`rating matrix value at subject ${Math.floor(i / k)}, column ${i % k} is ${v}`);
    sum += v;
  }
  const grandMean = sum / (n * k);
  // Sums of squares from deviations about the grand mean: no cancellation for large offsets (HU).
  const colDev = new Float64Array(k);
  let ssR = 0;
  let ssT = 0;
  for (let i = 0; i < n; i++) {
    let rowDev = 0;
    for (let j = 0; j < k; j++) {
      const d = values[i * k + j] - grandMean;
      rowDev += d;
      colDev[j] += d;
      ssT += d * d;
    }
    ssR += (rowDev * rowDev) / k;
  }
  let ssC = 0;
  for (let j = 0; j < k; j++) ssC += (colDev[j] * colDev[j]) / n;
  const ssE = Math.max(0, ssT - ssR - ssC);
  const ssW = Math.max(0, ssT - ssR);
  return {
    n,
    k,
    msR: ssR / (n - 1),
    msC: ssC / (k - 1),
    msE: ssE / ((n - 1) * (k - 1)),
    msW: ssW / (n * (k - 1)),
    ssTotal: ssT,
    grandMean,
  };
}

/** (F - 1)/(F + k - 1), the ICC implied by an F ratio; F = Infinity (no error variance) gives 1. */
function iccFromRatio(f: number, k: number): number {
  return f === Infinity ? 1 : (f - 1) / (f + k - 1);
}

/** MS ratio; 0/0 is undefined (null), x/0 is Infinity. */
function ratio(num: number, den: number): number | null {
  if (den > 0) return num / den;
  return num > 0 ? Infinity : null;
}

function oneWayOrConsistency(type: 'ICC1' | 'ICC3', ms: AnovaMeanSquares, alpha: number): IccResult {
  const { n, k, msR } = ms;
  const msErr = type === 'ICC1' ? ms.msW : ms.msE;
  const df1 = n - 1;
  const df2 = type === 'ICC1' ? n * (k - 1) : (n - 1) * (k - 1);
  const f = ratio(msR, msErr);
  if (f === null) {
    return { defined: false, type, reason: 'no between-subject and no error variance (ICC is 0/0)' };
  }
  const icc = iccFromRatio(f, k);
  const fLow = f / fQuantile(1 - alpha / 2, df1, df2);
  const fHigh = f * fQuantile(1 - alpha / 2, df2, df1);
  return { defined: true, type, icc, ciLow: iccFromRatio(fLow, k), ciHigh: iccFromRatio(fHigh, k), f, df1, df2 };
}

function absoluteAgreement(ms: AnovaMeanSquares, alpha: number): IccResult {
  const { n, k, msR, msC, msE } = ms;
  const den = msR + (k - 1) * msE + (k * (msC - msE)) / n;
  if (!(den > 0)) return { defined: false, type: 'ICC2', reason: 'no variance between subjects, perturbations or residual (ICC is 0/0)' };
  const rho = (msR - msE) / den;
  const df1 = n - 1;
  const df2 = (n - 1) * (k - 1);
  const f = ratio(msR, msE) ?? Number.NaN;
  // Satterthwaite df of the denominator (McGraw & Wong 1996, case 2A).
  const a = n * (1 + (k - 1) * rho) - k * rho;
  let nu: number;
  if (msE > 0) {
    const fc = msC / msE;
    const b = k * rho * fc + a;
    nu = ((k - 1) * (n - 1) * b * b) / ((n - 1) * k * k * rho * rho * fc * fc + a * a);
  } else {
    // Limit MSE -> 0: F_C -> infinity, so nu -> k - 1 while rho != 0.
    nu = rho !== 0 ? k - 1 : (k - 1) * (n - 1);
  }
  if (!(nu > 0) || !Number.isFinite(nu)) {
    return { defined: true, type: 'ICC2', icc: rho, ciLow: null, ciHigh: null, f, df1, df2 };
  }
  const fStar = fQuantile(1 - alpha / 2, n - 1, nu);
  const fStar2 = fQuantile(1 - alpha / 2, nu, n - 1);
  const spread = k * msC + (k * n - k - n) * msE;
  const ciLow = (n * (msR - fStar * msE)) / (fStar * spread + n * msR);
  const ciHigh = (n * (fStar2 * msR - msE)) / (spread + n * fStar2 * msR);
  return {
    defined: true,
    type: 'ICC2',
    icc: rho,
    ciLow: Number.isFinite(ciLow) ? ciLow : null,
    ciHigh: Number.isFinite(ciHigh) ? ciHigh : null,
    f,
    df1,
    df2,
  };
}

/** The ICC of the given form from ANOVA mean squares, with a (1 - alpha) two-sided interval. */
export function iccFromAnova(ms: AnovaMeanSquares, type: IccType, alpha = 0.05): IccResult {
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`ICC: alpha must be in (0, 1), got ${alpha}`);
  if (type === 'ICC2') return absoluteAgreement(ms, alpha);
  return oneWayOrConsistency(type, ms, alpha);
}

/** The ICC of a complete subjects x perturbations matrix. */
export function intraclassCorrelation(m: RatingMatrix, type: IccType, alpha = 0.05): IccResult {
  return iccFromAnova(twoWayAnova(m), type, alpha);
}

/** Accepts "ICC1"/"ICC(1,1)"/"icc3"/... as written in configs; throws naming the accepted forms. */
export function parseIccType(text: string): IccType {
  const compact = text.replace(/\s+/g, '').toUpperCase();
  const m = /^ICC\(?([123])(?:,1)?\)?$/.exec(compact);
  if (!m) throw new RangeError(`unknown ICC type "${text}"; use ICC1, ICC2 or ICC3 (= ICC(1,1), ICC(2,1), ICC(3,1))`);
  return `ICC${m[1]}` as IccType;
}
