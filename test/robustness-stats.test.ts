import { describe, expect, it } from 'vitest';
import {
  fCdf,
  fQuantile,
  inverseRegularizedIncompleteBeta,
  logGamma,
  regularizedIncompleteBeta,
} from '../src/robustness/distributions.js';
import { intraclassCorrelation, parseIccType, twoWayAnova, type IccEstimate, type IccType, type RatingMatrix } from '../src/robustness/icc.js';
import {
  classifyRobustness,
  coefficientOfVariationPct,
  DEFAULT_ROBUSTNESS_THRESHOLDS,
  parseRobustnessThresholds,
  quartileCoefficientOfDispersion,
  summarizeRobustness,
  type RobustnessValueRow,
} from '../src/robustness/summary.js';

/** Shrout & Fleiss (1979) Table 2: 6 targets (rows) rated by 4 judges (columns). */
const SHROUT_FLEISS = [
  [9, 2, 5, 8],
  [6, 1, 3, 2],
  [8, 4, 6, 8],
  [7, 1, 2, 6],
  [10, 5, 6, 9],
  [6, 2, 4, 7],
];

function matrixOf(rows: number[][]): RatingMatrix {
  return { nSubjects: rows.length, nColumns: rows[0].length, values: Float64Array.from(rows.flat()) };
}

function estimate(rows: number[][], type: IccType): IccEstimate {
  const r = intraclassCorrelation(matrixOf(rows), type);
  if (!r.defined) throw new Error(`ICC undefined: ${r.reason}`);
  return r;
}

/** Long-format rows for one (structure, source, feature) from a subjects x perturbations table. */
function longRows(feature: string, table: number[][], structure = 'GTV', source = 'Manual'): RobustnessValueRow[] {
  return table.flatMap((vals, i) =>
    vals.map((value, j) => ({ subject: `P${String(i + 1).padStart(2, '0')}`, structure, source, perturbationId: `p${j}`, feature, value })),
  );
}

/** Deterministic N(0,1) draws (mulberry32 + Box-Muller). */
function gaussian(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

describe('F distribution and incomplete beta', () => {
  it('matches published F table quantiles', () => {
    expect(fQuantile(0.975, 5, 15)).toBeCloseTo(3.5764, 4);
    expect(fQuantile(0.95, 3, 20)).toBeCloseTo(3.0984, 4);
    expect(fQuantile(0.95, 1, 10)).toBeCloseTo(4.9646, 4); // = t(0.975; 10)^2 = 2.228139^2
    expect(fQuantile(0.99, 2, 10)).toBeCloseTo(7.5594, 4);
    expect(fQuantile(0.975, 1, 1)).toBeCloseTo(647.789, 2);
  });

  it('approaches chi-square/d1 for a huge denominator df', () => {
    // chi2(0.95; 2) = -2 ln 0.05 exactly.
    expect(fQuantile(0.95, 2, 1e7)).toBeCloseTo(-Math.log(0.05), 4);
  });

  it('satisfies the symmetry identities and inverts its CDF', () => {
    for (const [d1, d2] of [
      [5, 15],
      [3, 20],
      [4.785, 5],
      [0.7, 2.3],
      [120, 3000],
    ]) {
      for (const p of [0.025, 0.3, 0.5, 0.95, 0.975]) {
        const f = fQuantile(p, d1, d2);
        expect(fCdf(f, d1, d2)).toBeCloseTo(p, 12);
        expect(fQuantile(1 - p, d2, d1)).toBeCloseTo(1 / f, 10);
      }
    }
    for (const [x, a, b] of [
      [0.2, 2.5, 7],
      [0.9, 30, 4],
      [0.5, 1000, 1000],
    ]) {
      expect(regularizedIncompleteBeta(x, a, b) + regularizedIncompleteBeta(1 - x, b, a)).toBeCloseTo(1, 12);
    }
    expect(regularizedIncompleteBeta(0.5, 1000, 1000)).toBeCloseTo(0.5, 12);
  });

  it('matches closed forms of the incomplete beta and gamma', () => {
    expect(regularizedIncompleteBeta(0.37, 1, 1)).toBeCloseTo(0.37, 14);
    expect(regularizedIncompleteBeta(0.6, 3, 1)).toBeCloseTo(0.6 ** 3, 14);
    expect(regularizedIncompleteBeta(0.6, 1, 4)).toBeCloseTo(1 - 0.4 ** 4, 14);
    // Beta(2,3): sum_{j=2..4} C(4,j) x^j (1-x)^(4-j) at x = 0.3
    expect(regularizedIncompleteBeta(0.3, 2, 3)).toBeCloseTo(0.3483, 13);
    expect(inverseRegularizedIncompleteBeta(0.3483, 2, 3)).toBeCloseTo(0.3, 12);
    expect(logGamma(10)).toBeCloseTo(Math.log(362880), 12);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 13);
  });

  it('rejects invalid arguments with a message', () => {
    expect(() => fQuantile(0.5, 0, 3)).toThrow(/degrees of freedom/);
    expect(() => regularizedIncompleteBeta(1.5, 2, 2)).toThrow(/x must be in \[0, 1\]/);
  });
});

describe('ICC: Shrout & Fleiss (1979) six-target, four-judge example', () => {
  it('reproduces the ANOVA mean squares', () => {
    const ms = twoWayAnova(matrixOf(SHROUT_FLEISS));
    expect(ms.msR).toBeCloseTo(11.2417, 4);
    expect(ms.msC).toBeCloseTo(32.4861, 4);
    expect(ms.msE).toBeCloseTo(1.01944, 5);
    expect(ms.msW).toBeCloseTo(6.26389, 5);
  });

  // Published: S&F Table 4; R psych::ICC and pingouin.intraclass_corr give the same intervals.
  it.each([
    ['ICC1', 0.166, -0.133, 0.723, 1.795, 5, 18],
    ['ICC2', 0.29, 0.019, 0.761, 11.03, 5, 15],
    ['ICC3', 0.715, 0.342, 0.946, 11.03, 5, 15],
  ] as const)('%s = %f, 95%% CI [%f, %f], F %f on (%i, %i) df', (type, icc, lo, hi, f, df1, df2) => {
    const r = estimate(SHROUT_FLEISS, type);
    expect(r.icc).toBeCloseTo(icc, 3);
    expect(r.ciLow!).toBeCloseTo(lo, 3);
    expect(r.ciHigh!).toBeCloseTo(hi, 3);
    expect(r.f).toBeCloseTo(f, 2);
    expect([r.df1, r.df2]).toEqual([df1, df2]);
  });

  it('ICC3 ignores a constant shift of one perturbation while ICC2 penalises it', () => {
    const shifted = SHROUT_FLEISS.map((r) => [r[0], r[1] + 5, r[2], r[3]]);
    expect(estimate(shifted, 'ICC3').icc).toBeCloseTo(estimate(SHROUT_FLEISS, 'ICC3').icc, 12);
    expect(estimate(shifted, 'ICC2').icc).not.toBeCloseTo(estimate(SHROUT_FLEISS, 'ICC2').icc, 3);
  });

  it('is 1 with a [1, 1] interval when perturbations never change a subject', () => {
    for (const type of ['ICC1', 'ICC2', 'ICC3'] as const) {
      const r = estimate([[3, 3, 3], [7, 7, 7], [5, 5, 5]], type);
      expect([r.icc, r.ciLow, r.ciHigh]).toEqual([1, 1, 1]);
    }
  });

  it('reports 0/0 as undefined and rejects too small matrices', () => {
    const r = intraclassCorrelation(matrixOf([[1, 2], [1, 2]]), 'ICC3');
    expect(r.defined).toBe(false);
    expect(() => intraclassCorrelation(matrixOf([[1, 2, 3]]), 'ICC3')).toThrow(/at least 2 subjects/);
  });

  it('parses configured ICC type names', () => {
    expect(parseIccType('ICC(3,1)')).toBe('ICC3');
    expect(parseIccType('icc2')).toBe('ICC2');
    expect(() => parseIccType('ICC(3,k)')).toThrow(/use ICC1, ICC2 or ICC3/);
  });
});

describe('CoV and QCD', () => {
  it('computes hand-checked values', () => {
    // mean 13, sample SD sqrt(20/3) = 2.58199 -> 19.86145 %; Q1 = 11.5, Q3 = 14.5 -> 3/26
    expect(coefficientOfVariationPct([10, 12, 14, 16])).toBeCloseTo(19.86145, 4);
    expect(quartileCoefficientOfDispersion([16, 10, 14, 12])).toBeCloseTo(3 / 26, 12);
    // mean 3, SD sqrt(2.5) -> 52.7046 %; Q1 = 2, Q3 = 4 -> 1/3
    expect(coefficientOfVariationPct([1, 2, 3, 4, 5])).toBeCloseTo(52.7046, 4);
    expect(quartileCoefficientOfDispersion([5, 4, 3, 2, 1])).toBeCloseTo(1 / 3, 12);
  });

  it('is undefined off a ratio scale or with too few values', () => {
    expect(coefficientOfVariationPct([-800, -790, -810])).toBeNull();
    expect(coefficientOfVariationPct([0, 0, 0])).toBeNull();
    expect(coefficientOfVariationPct([5])).toBeNull();
    expect(quartileCoefficientOfDispersion([-3, 1, 2, 4])).toBeNull();
    expect(quartileCoefficientOfDispersion([1, 2, 3])).toBeNull();
    expect(quartileCoefficientOfDispersion([0, 0, 0, 0, 9])).toBeNull(); // Q1 + Q3 = 0
    expect(coefficientOfVariationPct([0, 0, 0, 0, 9])).toBeCloseTo(223.6068, 4); // SD sqrt(16.2)/mean 1.8
  });

  it('summarises per-subject CoV and QCD by the cohort median and quartiles', () => {
    const table = [
      [10, 12, 14, 16], // CoV 19.86145 %, QCD 3/26
      [1, 2, 3, 4], //     CoV 51.6398 %, QCD 1.5/5 = 0.3
      [100, 101, 99, 100], // CoV 0.8165 %, QCD 0.0037406
    ];
    const [row] = summarizeRobustness(longRows('original_firstorder_Energy', table));
    expect(row.cov_pct).toBeCloseTo(19.86145, 4);
    expect(row.cov_pct_q1).toBeCloseTo((0.816497 + 19.86145) / 2, 4);
    expect(row.cov_pct_q3).toBeCloseTo((19.86145 + 51.6398) / 2, 4);
    expect(row.qcd).toBeCloseTo(3 / 26, 10);
    expect(row.qcd_q3).toBeCloseTo((3 / 26 + 0.3) / 2, 10);
  });
});

describe('robustness summary and labels', () => {
  const nSubjects = 10;
  const nPerturbations = 12;
  const subjectLevel = Array.from({ length: nSubjects }, (_, i) => 200 + 60 * i); // 200 .. 740

  function table(valueOf: (level: number, noise: () => number) => number, seed: number): number[][] {
    const noise = gaussian(seed);
    return subjectLevel.map((level) => Array.from({ length: nPerturbations }, () => valueOf(level, noise)));
  }

  const stable = table((m, z) => m * (1 + 0.01 * z()), 1);
  const noisy = table((m, z) => m * Math.exp(0.5 * z()), 2); // positive, ~50 % CoV
  const negativeHu = table((m, z) => -900 + m / 4 + 2 * z(), 3); // about -850 .. -715 HU
  const noisyNegative = table((m, z) => -900 + m / 4 + 80 * z(), 4);

  const rows = [
    ...longRows('original_shape_VoxelVolume', stable),
    ...longRows('original_glcm_ClusterShade', noisy),
    ...longRows('original_firstorder_Mean', negativeHu),
    ...longRows('original_firstorder_Median', noisyNegative),
  ];
  const summary = summarizeRobustness(rows);
  const byFeature = new Map(summary.map((r) => [r.feature_name, r]));

  it('labels a stable feature robust and a noisy one poor', () => {
    const s = byFeature.get('original_shape_VoxelVolume')!;
    expect(s.robustness_label).toBe('robust');
    expect(s.icc_ci95_low!).toBeGreaterThanOrEqual(0.9);
    expect(s.cov_pct!).toBeGreaterThan(0.5);
    expect(s.cov_pct!).toBeLessThan(2);
    expect([s.n_subjects, s.n_perturbations, s.icc_type]).toEqual([nSubjects, nPerturbations, 'ICC3']);

    const p = byFeature.get('original_glcm_ClusterShade')!;
    expect(p.robustness_label).toBe('poor');
    expect(p.icc!).toBeLessThan(0.75);
    expect(p.reason).toBe('');
  });

  it('gives a negative-valued HU feature an ICC but no ratio measures', () => {
    const hu = byFeature.get('original_firstorder_Mean')!;
    expect(hu.icc!).toBeGreaterThan(0.95);
    expect(hu.icc_ci95_low!).toBeGreaterThan(0.9);
    expect(hu.cov_pct).toBeNull();
    expect(hu.qcd).toBeNull();
    expect(hu.robustness_label).toBe('not_evaluable');
    expect(hu.reason).toMatch(/CoV\/QCD undefined: subject P01 has negative values/);

    // A noisy negative feature is poor by its ICC alone; CoV could not make it better.
    const noisyHu = byFeature.get('original_firstorder_Median')!;
    expect(noisyHu.icc_ci95_low!).toBeLessThan(0.75);
    expect(noisyHu.robustness_label).toBe('poor');
    expect(noisyHu.cov_pct).toBeNull();
  });

  it('writes the ICC of the summary from the same matrix as the ICC module, for each type', () => {
    for (const type of ['ICC1', 'ICC2', 'ICC3'] as const) {
      const [row] = summarizeRobustness(longRows('f', SHROUT_FLEISS), { iccType: type });
      const direct = estimate(SHROUT_FLEISS, type);
      expect([row.icc, row.icc_ci95_low, row.icc_ci95_high]).toEqual([direct.icc, direct.ciLow, direct.ciHigh]);
    }
  });

  it('follows configured thresholds', () => {
    const strict = parseRobustnessThresholds({ cov: { robust_pct: 0.5 } });
    expect(strict).toEqual({ ...DEFAULT_ROBUSTNESS_THRESHOLDS, covRobustPct: 0.5 });
    const [s] = summarizeRobustness(longRows('original_shape_VoxelVolume', stable), { thresholds: strict });
    expect(s.robustness_label).toBe('acceptable');
    const [p] = summarizeRobustness(longRows('original_shape_VoxelVolume', stable), {
      thresholds: parseRobustnessThresholds({ icc: { robust: 1, acceptable: 1 } }),
    });
    expect(p.robustness_label).toBe('poor');
    const lenient = parseRobustnessThresholds({ icc: { robust: 0, acceptable: 0 }, cov: { robust_pct: 1000, acceptable_pct: 1000 } });
    const [hu] = summarizeRobustness(longRows('original_firstorder_Mean', negativeHu), { thresholds: lenient });
    expect(hu.robustness_label).toBe('not_evaluable'); // thresholds never make a ratio measure defined
  });

  it('classifies on the CI lower bound and CoV', () => {
    expect(classifyRobustness(0.95, 9.9)).toBe('robust');
    expect(classifyRobustness(0.95, 10.1)).toBe('acceptable');
    expect(classifyRobustness(0.89, 5)).toBe('acceptable');
    expect(classifyRobustness(0.8, 20.5)).toBe('poor');
    expect(classifyRobustness(0.74, 1)).toBe('poor');
  });

  it('validates thresholds and names the bad key', () => {
    expect(parseRobustnessThresholds(undefined)).toEqual(DEFAULT_ROBUSTNESS_THRESHOLDS);
    expect(() => parseRobustnessThresholds({ icc: { robst: 0.9 } })).toThrow(/radiomics_robustness\.thresholds\.icc.*robst/);
    expect(() => parseRobustnessThresholds({ icc: { robust: 1.5 } })).toThrow(/thresholds\.icc\.robust/);
    expect(() => parseRobustnessThresholds({ icc: { robust: 0.7 } })).toThrow(/acceptable \(0\.75\) must not exceed robust \(0\.7\)/);
  });

  it('drops and reports subjects with a missing value', () => {
    const withGap = longRows('original_shape_VoxelVolume', stable).filter((r) => !(r.subject === 'P03' && r.perturbationId === 'p5'));
    const nan = withGap.find((r) => r.subject === 'P07' && r.perturbationId === 'p0')!;
    nan.value = Number.NaN;
    const [row] = summarizeRobustness(withGap);
    expect(row.n_subjects).toBe(nSubjects - 2);
    expect(row.n_subjects_dropped).toBe(2);
    expect(row.dropped_subjects).toBe('P03;P07');
    expect(row.reason).toMatch(/2 subject\(s\) dropped/);
    const kept = stable.filter((_, i) => i !== 2 && i !== 6);
    expect(row.icc).toBeCloseTo(estimate(kept, 'ICC3').icc, 12);
  });

  it('is not evaluable with too few subjects or perturbations, or zero variance', () => {
    const [one] = summarizeRobustness(longRows('f', [[1, 2, 3]]));
    expect(one.robustness_label).toBe('not_evaluable');
    expect(one.icc).toBeNull();
    expect(one.reason).toMatch(/at least 2 complete subjects and 2 perturbations, has 1 x 3/);

    const [single] = summarizeRobustness(longRows('f', [[1], [2], [3]]));
    expect(single.robustness_label).toBe('not_evaluable');
    expect(single.n_perturbations).toBe(1);

    const [flat] = summarizeRobustness(longRows('f', [[4, 4, 4], [4, 4, 4]]));
    expect(flat.robustness_label).toBe('not_evaluable');
    expect(flat.icc).toBeNull();
    expect(flat.reason).toMatch(/zero variance/);
  });

  it('keeps structures and sources apart and does not depend on row order', () => {
    const mixed = [...longRows('f', stable, 'GTV', 'Manual'), ...longRows('f', noisy, 'GTV', 'AutoRTS_total'), ...longRows('f', stable, 'CTV', 'Manual')];
    const shuffled = [...mixed].reverse();
    const a = summarizeRobustness(mixed);
    expect(a.map((r) => [r.structure, r.segmentation_source, r.robustness_label])).toEqual([
      ['CTV', 'Manual', 'robust'],
      ['GTV', 'AutoRTS_total', 'poor'],
      ['GTV', 'Manual', 'robust'],
    ]);
    expect(summarizeRobustness(shuffled)).toEqual(a);
  });

  it('rejects duplicate measurements', () => {
    const rows2 = longRows('f', stable);
    rows2.push({ ...rows2[0] });
    expect(() => summarizeRobustness(rows2)).toThrow(/duplicate value for subject "P01".*perturbation "p0"/);
  });
});
