/**
 * Cohort robustness summary: one row per (structure, segmentation source, feature) with the ICC and
 * its confidence interval, per-subject dispersion summarised over the cohort, and a label.
 * Pure computation: rows in, rows out.
 *
 * Definitions (the choices, and where they differ from the original Python rtpipeline):
 * - ICC: subjects x perturbations matrix; the form is configurable (default ICC3 = ICC(3,1), as the
 *   original's `icc_type: ICC3`). Subjects lacking any perturbation's value (absent or non-finite)
 *   are dropped and reported; the perturbation set is the union seen in the group.
 * - CoV: per subject over its k perturbations, sample SD (k-1) / |mean| x 100 (the original's
 *   `compute_cov`, ddof=1), then the cohort median (also Q1/Q3 over subjects). The original pooled
 *   all subjects' values, which mixes between-patient spread into a within-patient measure.
 * - QCD: per subject (Q3 - Q1)/(Q3 + Q1) with quartiles by linear interpolation between order
 *   statistics (numpy.percentile's default, R type 7, as the original), then the cohort median.
 *   Like the original it needs at least 4 values; with fewer perturbations qcd is left empty.
 *   QCD is descriptive: the label uses ICC and CoV only, as in the original.
 * - Ratio measures (CoV, QCD) need a ratio scale. They are undefined for a subject with any
 *   negative value (interval-scale or signed features: HU statistics, skewness, IMC1) or a mean
 *   of ~0; then the feature's cov_pct/qcd stay empty and it is labelled not_evaluable, unless its
 *   ICC alone already makes it poor. Its ICC is always reported (later rtpipeline versions also
 *   refuse CoV/QCD on non-positive values rather than using |mean|).
 * - Labels: robust when the ICC CI lower bound >= thresholds.icc.robust (0.90) and
 *   CoV <= thresholds.cov.robust_pct (10 %); acceptable with 0.75 and 20 %; otherwise poor.
 *   not_evaluable (with a reason) for < 2 subjects or perturbations, zero variance, an undefined
 *   ICC or interval, or undefined ratio measures.
 */
import { z } from 'zod';
import { intraclassCorrelation, type IccType } from './icc.js';

/** One measured feature value: long format, as in radiomics_robustness_ct.csv. */
export interface RobustnessValueRow {
  subject: string;
  structure: string;
  source: string;
  perturbationId: string;
  feature: string;
  /** null/NaN = missing (the extractor produced no value). */
  value: number | null;
}

export type RobustnessLabel = 'robust' | 'acceptable' | 'poor' | 'not_evaluable';

export interface RobustnessThresholds {
  iccRobust: number;
  iccAcceptable: number;
  covRobustPct: number;
  covAcceptablePct: number;
}

export const DEFAULT_ROBUSTNESS_THRESHOLDS: Readonly<RobustnessThresholds> = Object.freeze({
  iccRobust: 0.9,
  iccAcceptable: 0.75,
  covRobustPct: 10,
  covAcceptablePct: 20,
});

/** The contract's columns, in order. */
export const ROBUSTNESS_SUMMARY_COLUMNS = [
  'structure',
  'segmentation_source',
  'feature_name',
  'n_subjects',
  'n_perturbations',
  'icc',
  'icc_ci95_low',
  'icc_ci95_high',
  'cov_pct',
  'qcd',
  'robustness_label',
] as const;

/** Extra columns written after the contract's ones. */
export const ROBUSTNESS_SUMMARY_EXTRA_COLUMNS = [
  'icc_type',
  'cov_pct_q1',
  'cov_pct_q3',
  'qcd_q1',
  'qcd_q3',
  'n_subjects_dropped',
  'dropped_subjects',
  'reason',
] as const;

export interface RobustnessSummaryRow {
  structure: string;
  segmentation_source: string;
  feature_name: string;
  /** Subjects used (complete over all perturbations). */
  n_subjects: number;
  n_perturbations: number;
  icc: number | null;
  icc_ci95_low: number | null;
  icc_ci95_high: number | null;
  /** Cohort median of the per-subject CoV, in %. */
  cov_pct: number | null;
  /** Cohort median of the per-subject QCD. */
  qcd: number | null;
  robustness_label: RobustnessLabel;
  icc_type: IccType;
  cov_pct_q1: number | null;
  cov_pct_q3: number | null;
  qcd_q1: number | null;
  qcd_q3: number | null;
  n_subjects_dropped: number;
  /** Dropped subject ids joined by ';'. */
  dropped_subjects: string;
  /** Why not_evaluable, or a note (e.g. why cov_pct is empty); '' otherwise. */
  reason: string;
}

export interface SummaryOptions {
  iccType?: IccType;
  thresholds?: RobustnessThresholds;
  /** Two-sided CI level is 1 - alpha. */
  alpha?: number;
}

// ---------------------------------------------------------------------------------------------
// Thresholds from config (radiomics_robustness.thresholds, the original's layout)

const unitInterval = z.number().min(0).max(1);
const percent = z.number().min(0);

const thresholdsInputSchema = z
  .object({
    icc: z
      .object({ robust: unitInterval.optional(), acceptable: unitInterval.optional() })
      .strict()
      .optional(),
    cov: z
      .object({ robust_pct: percent.optional(), acceptable_pct: percent.optional() })
      .strict()
      .optional(),
  })
  .strict();

/**
 * Validates `radiomics_robustness.thresholds` ({icc: {robust, acceptable}, cov: {robust_pct,
 * acceptable_pct}}); missing keys take the defaults. Throws naming the bad key.
 */
export function parseRobustnessThresholds(raw: unknown, where = 'radiomics_robustness.thresholds'): RobustnessThresholds {
  const parsed = thresholdsInputSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = [where, ...issue.path.map(String)].join('.');
    const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
    throw new Error(`${path}: ${issue.message}${keys}; expected {icc: {robust, acceptable}, cov: {robust_pct, acceptable_pct}}`);
  }
  const d = DEFAULT_ROBUSTNESS_THRESHOLDS;
  const t: RobustnessThresholds = {
    iccRobust: parsed.data.icc?.robust ?? d.iccRobust,
    iccAcceptable: parsed.data.icc?.acceptable ?? d.iccAcceptable,
    covRobustPct: parsed.data.cov?.robust_pct ?? d.covRobustPct,
    covAcceptablePct: parsed.data.cov?.acceptable_pct ?? d.covAcceptablePct,
  };
  if (t.iccAcceptable > t.iccRobust) {
    throw new Error(`${where}.icc: acceptable (${t.iccAcceptable}) must not exceed robust (${t.iccRobust})`);
  }
  if (t.covAcceptablePct < t.covRobustPct) {
    throw new Error(`${where}.cov: acceptable_pct (${t.covAcceptablePct}) must not be below robust_pct (${t.covRobustPct})`);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Dispersion measures

/** p-quantile (0..1) of ascending-sorted values by linear interpolation (numpy default, R type 7). */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) throw new RangeError('quantile of an empty sample');
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i]));
  return m;
}

/** Why a ratio measure (CoV, QCD) is meaningless for these values, or null when it is fine. */
export function ratioMeasureProblem(values: ArrayLike<number>): string | null {
  for (let i = 0; i < values.length; i++) {
    if (values[i] < 0) return 'negative values (interval-scale or signed feature)';
  }
  const m = mean(values);
  if (!(Math.abs(m) > 1e-12 * maxAbs(values))) return 'mean is ~0';
  return null;
}

/** Sample-SD CoV in %, SD/|mean| x 100; null with fewer than 2 values or when not a ratio scale. */
export function coefficientOfVariationPct(values: ArrayLike<number>): number | null {
  if (values.length < 2 || ratioMeasureProblem(values) !== null) return null;
  const m = mean(values);
  let ss = 0;
  for (let i = 0; i < values.length; i++) ss += (values[i] - m) ** 2;
  return (Math.sqrt(ss / (values.length - 1)) / Math.abs(m)) * 100;
}

/** (Q3 - Q1)/(Q3 + Q1); null with fewer than 4 values, when not a ratio scale, or Q1 + Q3 ~ 0. */
export function quartileCoefficientOfDispersion(values: ArrayLike<number>): number | null {
  if (values.length < 4 || ratioMeasureProblem(values) !== null) return null;
  const s = sortedCopy(values);
  const q1 = quantileSorted(s, 0.25);
  const q3 = quantileSorted(s, 0.75);
  if (!(q1 + q3 > 1e-12 * maxAbs(s))) return null;
  return (q3 - q1) / (q3 + q1);
}

// ---------------------------------------------------------------------------------------------
// Labels

export function classifyRobustness(
  iccCiLow: number,
  covPct: number,
  t: RobustnessThresholds = DEFAULT_ROBUSTNESS_THRESHOLDS,
): Exclude<RobustnessLabel, 'not_evaluable'> {
  if (iccCiLow >= t.iccRobust && covPct <= t.covRobustPct) return 'robust';
  if (iccCiLow >= t.iccAcceptable && covPct <= t.covAcceptablePct) return 'acceptable';
  return 'poor';
}

// ---------------------------------------------------------------------------------------------
// Grouping and the per-feature summary

interface FeatureGroup {
  structure: string;
  source: string;
  feature: string;
  /** subject -> perturbation -> value */
  bySubject: Map<string, Map<string, number | null>>;
  perturbations: Set<string>;
}

const KEY_SEP = '\u0000';

function groupRows(rows: Iterable<RobustnessValueRow>): FeatureGroup[] {
  const groups = new Map<string, FeatureGroup>();
  for (const r of rows) {
    const key = r.structure + KEY_SEP + r.source + KEY_SEP + r.feature;
    let g = groups.get(key);
    if (!g) {
      g = { structure: r.structure, source: r.source, feature: r.feature, bySubject: new Map(), perturbations: new Set() };
      groups.set(key, g);
    }
    let perSubject = g.bySubject.get(r.subject);
    if (!perSubject) {
      perSubject = new Map();
      g.bySubject.set(r.subject, perSubject);
    }
    if (perSubject.has(r.perturbationId)) {
      throw new Error(
        `robustness input: duplicate value for subject "${r.subject}", structure "${r.structure}", source "${r.source}", ` +
          `feature "${r.feature}", perturbation "${r.perturbationId}"; each (subject, structure, source, perturbation, feature) must appear once`,
      );
    }
    perSubject.set(r.perturbationId, r.value);
    g.perturbations.add(r.perturbationId);
  }
  const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...groups.values()].sort(
    (a, b) => byText(a.structure, b.structure) || byText(a.source, b.source) || byText(a.feature, b.feature),
  );
}

interface CohortStat {
  median: number;
  q1: number;
  q3: number;
}

function cohortStat(values: number[]): CohortStat {
  const s = sortedCopy(values);
  return { median: quantileSorted(s, 0.5), q1: quantileSorted(s, 0.25), q3: quantileSorted(s, 0.75) };
}

function summarizeGroup(g: FeatureGroup, iccType: IccType, t: RobustnessThresholds, alpha: number): RobustnessSummaryRow {
  const perturbations = [...g.perturbations].sort();
  const k = perturbations.length;
  const subjects = [...g.bySubject.keys()].sort();
  const kept: string[] = [];
  const dropped: string[] = [];
  const matrix: number[] = [];
  for (const s of subjects) {
    const values = g.bySubject.get(s)!;
    const row = perturbations.map((p) => values.get(p));
    if (row.every((v): v is number => typeof v === 'number' && Number.isFinite(v))) {
      kept.push(s);
      matrix.push(...row);
    } else {
      dropped.push(s);
    }
  }
  const n = kept.length;
  const row: RobustnessSummaryRow = {
    structure: g.structure,
    segmentation_source: g.source,
    feature_name: g.feature,
    n_subjects: n,
    n_perturbations: k,
    icc: null,
    icc_ci95_low: null,
    icc_ci95_high: null,
    cov_pct: null,
    qcd: null,
    robustness_label: 'not_evaluable',
    icc_type: iccType,
    cov_pct_q1: null,
    cov_pct_q3: null,
    qcd_q1: null,
    qcd_q3: null,
    n_subjects_dropped: dropped.length,
    dropped_subjects: dropped.join(';'),
    reason: '',
  };
  const droppedNote = dropped.length > 0 ? ` (${dropped.length} subject(s) dropped for missing values)` : '';
  if (n < 2 || k < 2) {
    row.reason = `needs at least 2 complete subjects and 2 perturbations, has ${n} x ${k}${droppedNote}`;
    return row;
  }
  const values = Float64Array.from(matrix);

  // Per-subject dispersion; the first subject whose values are not on a ratio scale voids CoV/QCD.
  const covs: number[] = [];
  const qcds: number[] = [];
  let ratioProblem: string | null = null;
  for (let i = 0; i < n; i++) {
    const v = values.subarray(i * k, (i + 1) * k);
    const problem = ratioMeasureProblem(v);
    if (problem !== null) {
      ratioProblem = `CoV/QCD undefined: subject ${kept[i]} has ${problem}`;
      break;
    }
    covs.push(coefficientOfVariationPct(v)!);
    const q = quartileCoefficientOfDispersion(v);
    if (q !== null) qcds.push(q);
  }
  if (ratioProblem === null) {
    const c = cohortStat(covs);
    row.cov_pct = c.median;
    row.cov_pct_q1 = c.q1;
    row.cov_pct_q3 = c.q3;
    if (qcds.length === n) {
      const q = cohortStat(qcds);
      row.qcd = q.median;
      row.qcd_q1 = q.q1;
      row.qcd_q3 = q.q3;
    }
  }

  if (isZeroVariance(values)) {
    row.reason = `zero variance: all ${n * k} values are equal${droppedNote}`;
    return row;
  }
  const icc = intraclassCorrelation({ nSubjects: n, nColumns: k, values }, iccType, alpha);
  if (!icc.defined) {
    row.reason = `${iccType} undefined: ${icc.reason}${droppedNote}`;
    return row;
  }
  row.icc = icc.icc;
  row.icc_ci95_low = icc.ciLow;
  row.icc_ci95_high = icc.ciHigh;
  if (icc.ciLow === null) {
    row.reason = `${iccType} confidence interval undefined${droppedNote}`;
    return row;
  }
  if (row.cov_pct === null) {
    // Without CoV the best possible label is unknown, but a low ICC alone already means poor.
    if (icc.ciLow < t.iccAcceptable) {
      row.robustness_label = 'poor';
      row.reason = `${ratioProblem}; labelled by ICC alone${droppedNote}`;
    } else {
      row.reason = `${ratioProblem}; judge by the ICC${droppedNote}`;
    }
    return row;
  }
  row.robustness_label = classifyRobustness(icc.ciLow, row.cov_pct, t);
  row.reason = droppedNote.trim();
  return row;
}

/**
 * Zero variance up to rounding: every value within 1e-12 (relative) of the grand mean. Features
 * recomputed bit-differently from the same mask would otherwise yield an ICC of pure rounding noise.
 */
function isZeroVariance(values: Float64Array): boolean {
  const m = mean(values);
  const tol = 1e-12 * Math.max(maxAbs(values), Number.MIN_VALUE);
  for (let i = 0; i < values.length; i++) if (Math.abs(values[i] - m) > tol) return false;
  return true;
}

/** One summary row per (structure, source, feature), sorted by those keys. */
export function summarizeRobustness(rows: Iterable<RobustnessValueRow>, options: SummaryOptions = {}): RobustnessSummaryRow[] {
  const iccType = options.iccType ?? 'ICC3';
  const thresholds = options.thresholds ?? DEFAULT_ROBUSTNESS_THRESHOLDS;
  const alpha = options.alpha ?? 0.05;
  return groupRows(rows).map((g) => summarizeGroup(g, iccType, thresholds, alpha));
}
